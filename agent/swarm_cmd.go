package main

import (
	"fmt"
	"io"
)

// swarmMoved is what `kanade-agent swarm` prints: the load simulator is a
// binary of its own (agent/swarm/cmd/kanade-swarm, with the same flags),
// so that the production agent does not carry it. The exit code 2 makes
// a script that still calls the agent fail clearly.
const swarmMoved = "kanade-agent swarm: the simulator is bin/kanade-swarm (make build), with the same flags"

func runSwarm(stderr io.Writer) error {
	fmt.Fprintln(stderr, swarmMoved)
	return exitCode(2)
}
