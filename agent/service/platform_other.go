//go:build !linux && !darwin && !windows

package service

import kardianos "github.com/kardianos/service"

// Other systems get kardianos' own service files.
func checkPlatform() error { return nil }

func configure(*kardianos.Config, Spec) error { return nil }

func afterInstall() ([]string, error) { return nil, nil }

func explain(err error) error { return err }
