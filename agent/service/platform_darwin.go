package service

import kardianos "github.com/kardianos/service"

func checkPlatform() error { return nil }

func configure(c *kardianos.Config, s Spec) error {
	plist, err := LaunchdPlist(s)
	if err != nil {
		return err
	}
	c.Option["LaunchdConfig"] = plist
	return nil
}

func afterInstall() ([]string, error) { return nil, nil }

func explain(err error) error { return err }
