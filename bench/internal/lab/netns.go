// Package lab is the bench's toolkit for running servers under measure on
// this machine: processes started inside a namespace with a log, a stop
// and their CPU, cgroups that cap or meter a process's CPU, and sockets
// opened inside a namespace. The namespaces themselves, the veth pairs and
// the root check come from internal/testlab, shared with the tests outside
// bench/.
package lab

import (
	"fmt"
	"net"

	"osim/internal/pxeclient"
)

// ListenLoopback opens a UDP socket on 127.0.0.1 in the namespace ns has
// entered; the socket stays there wherever it is used.
func ListenLoopback(ns *pxeclient.Netns) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := ns.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lab: socket in a namespace: %w", err)
	}
	return c, nil
}
