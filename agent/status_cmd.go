package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/kanadehq/kanade/agent/service"
	"github.com/kanadehq/kanade/agent/status"
)

// runStatus is `kanade-agent status`: the service's state and what the
// running agent last recorded in DATA/status.json.
func runStatus(name string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "", "the agent's data directory (default: as for a run)")
	configPath := fs.String("config", "", "the agent's TOML config file (for its data directory)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s [--data DIR | --config FILE]\n", name)
		fs.PrintDefaults()
		fmt.Fprintf(stderr, `
Prints the service's state, whether the agent is connected and since when, its last error,
pc_id, groups, version and server. Reading the agent's status needs the rights of the agent's
user (root, or an elevated prompt on Windows).
Exit code: %d when the agent runs and is connected, %d when it runs but is not connected,
%d when it does not run (or its status cannot be read).
`, status.ExitConnected, status.ExitNotConnected, status.ExitNotRunning)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	dir, err := statusDataDir(*data, *configPath, os.Getenv("KANADE_AGENT_DATA"))
	if err != nil {
		return err
	}
	st, readErr := status.Read(dir)
	r := status.Report{Service: service.State(), DataDir: dir, Status: st, ReadErr: readErr, Now: time.Now()}
	if code := r.Write(stdout); code != status.ExitConnected {
		return exitCode(code)
	}
	return nil
}

// statusDataDir finds the data directory as a run would: the flag, the
// environment, the config file, the default.
func statusDataDir(flagData, configPath, envData string) (string, error) {
	switch {
	case flagData != "":
		return flagData, nil
	case envData != "":
		return envData, nil
	case configPath != "":
		var c struct {
			Data string `toml:"data"`
		}
		if _, err := toml.DecodeFile(configPath, &c); err != nil {
			return "", fmt.Errorf("config %s: %w", configPath, err)
		}
		if c.Data != "" {
			return c.Data, nil
		}
	}
	dir, _ := chooseDataDir()
	return dir, nil
}
