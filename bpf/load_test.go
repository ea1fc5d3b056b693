package bpf

import (
	"errors"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"osim/internal/testlab"
)

// TestVerifierAcceptsTheProgram loads the committed object into this
// kernel: the option walk must stay within the verifier's limits.
func TestVerifierAcceptsTheProgram(t *testing.T) {
	testlab.RequireRoot(t, "loading the XDP program to prove the verifier accepts it: CAP_BPF")
	spec, err := LoadXdp()
	if err != nil {
		t.Fatal(err)
	}
	var objs XdpObjects
	err = spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats}})
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		t.Fatalf("verifier: %+v", ve)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	log := objs.XdpPxe.VerifierLog
	for _, l := range strings.Split(log, "\n") {
		if strings.HasPrefix(l, "processed") {
			t.Log(l)
		}
	}
}
