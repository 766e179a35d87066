package service

import (
	"fmt"

	kardianos "github.com/kardianos/service"
)

// checkPlatform requires systemd: the unit's restart and kill settings
// are what keeps the agent up and its scripts from being orphaned, and
// kardianos would fall back to a System V script without them.
func checkPlatform() error {
	if p := kardianos.Platform(); p != "linux-systemd" {
		return &platformError{fmt.Sprintf("systemd is not running here (kardianos found %s)", p),
			"kanade-agent installs a systemd unit; without systemd, run `kanade-agent --server …` under your own init system"}
	}
	return nil
}

func configure(c *kardianos.Config, s Spec) error {
	unit, err := SystemdUnit(s)
	if err != nil {
		return err
	}
	c.Option["SystemdScript"] = unit
	return nil
}

func afterInstall() ([]string, error) { return nil, nil }

func explain(err error) error { return err }
