package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestChildrenMakesEachChildOnceAndCountsIntoTheVector(t *testing.T) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "things_total", Help: "Things."}, []string{"kind"})
	var c Children[string, prometheus.Counter]
	made := 0
	for _, k := range []string{"a", "b", "a", "a"} {
		c.Get(k, func() prometheus.Counter { made++; return vec.WithLabelValues(k) }).Inc()
	}
	if made != 2 {
		t.Errorf("made %d children, want 2", made)
	}
	if a, b := testutil.ToFloat64(vec.WithLabelValues("a")), testutil.ToFloat64(vec.WithLabelValues("b")); a != 3 || b != 1 {
		t.Errorf("a=%v b=%v, want 3 and 1", a, b)
	}
}
