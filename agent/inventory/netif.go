//go:build !windows

package inventory

import (
	"context"
	"fmt"
	"net"

	"github.com/kanadehq/kanade/agent/wire"
)

// collectNetwork lists the interfaces that are up and have addresses.
func collectNetwork(ctx context.Context, inv *wire.Inventory) error {
	ifs, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("interfaces: %w", err)
	}
	for _, i := range ifs {
		addrs, err := i.Addrs()
		if err != nil {
			continue
		}
		ss := make([]string, len(addrs))
		for k, a := range addrs {
			ss[k] = a.String()
		}
		if n, ok := nicFrom(i.Name, i.HardwareAddr.String(), i.Flags&net.FlagUp != 0, i.Flags&net.FlagLoopback != 0, ss); ok {
			inv.Network = append(inv.Network, n)
		}
	}
	return nil
}
