package storm

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"

	"osim/internal/testlab"
)

// newLab makes the storm's lab: a server and a client namespace joined by
// a veth, xbsPID (10.97.0.1/24) in the server's, xbcPID (10.97.0.2/24) in
// the client's.
func newLab() (*testlab.Pair, error) {
	tag := strconv.Itoa(os.Getpid())
	p, err := testlab.NewPair(context.Background(), testlab.PairSpec{
		Prefix: "osim-xb", ServerIf: "xbs" + tag, ClientIf: "xbc" + tag,
		ServerAddr: netip.MustParsePrefix("10.97.0.1/24"), ClientAddr: netip.MustParsePrefix("10.97.0.2/24"),
	})
	if err != nil {
		return nil, fmt.Errorf("storm: %w", err)
	}
	return p, nil
}
