package bpf

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// TestVerifierAcceptsTheProgram loads the committed object into this
// kernel: the option walk must stay within the verifier's limits.
func TestVerifierAcceptsTheProgram(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("loading the XDP program needs root (CAP_BPF); CI=true must run it as root")
		}
		t.Skip("loading the XDP program needs root (CAP_BPF): skipped, run as root to prove the verifier accepts it")
	}
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
