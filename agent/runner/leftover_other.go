//go:build unix && !linux && !darwin

package runner

import (
	"errors"
	"syscall"
)

// pinThread is false: there is no parent-death signal here.
const pinThread = false

func setDeathSignal(*syscall.SysProcAttr) {}

func bootID() string { return "" }

// procInfo cannot read processes here: without a start time or an
// environment no group can be told to be a run's, so KillLeftover leaves
// them alone.
func procInfo(int) (*member, error) { return nil, nil }

func groupMembers(int) ([]member, error) { return nil, errors.ErrUnsupported }

func environOf(int) []string { return nil }
