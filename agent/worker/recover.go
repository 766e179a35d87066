package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/kanadehq/kanade/agent/runner"
	"github.com/kanadehq/kanade/agent/wire"
)

// ReasonAgentRestarted is the reason of a run that was under way when the
// agent last stopped without finishing it (a crash, kill -9, a power
// loss): it was killed and is never run again.
const ReasonAgentRestarted = "agent restarted"

// treeLedger is a Ledger that also keeps the process tree of each running
// execution (package ledger does; the swarm's simulated runs have none).
type treeLedger interface {
	Started(execID string, tree []byte) error
	Tree(execID string) []byte
}

// recordTree is the runner's OnStart for an execution: it records the
// run's process tree in the ledger, so that the next agent can kill what
// a crash of this one leaves running. nil when the ledger keeps no trees.
func (w *Worker) recordTree(execID string) func(runner.Tree) {
	tl, ok := w.ledger.(treeLedger)
	if !ok {
		return nil
	}
	return func(t runner.Tree) {
		if t.Empty() {
			return // Windows: the tree dies with the agent's Job Object handle
		}
		b, err := json.Marshal(t)
		if err == nil {
			err = tl.Started(execID, b)
		}
		if err != nil {
			w.log.Error("cannot record the process tree of a run; a crash of the agent would leave it running", "exec_id", execID, "err", err)
		}
	}
}

// recoverUnfinished ends the executions that were running when the agent
// last stopped without finishing them. What is left of their process
// trees is killed (on Windows the system already did, with the Job
// Objects), and each is reported killed with ReasonAgentRestarted. They
// are never run again. Their script files, which the runs did not live to
// remove, are removed.
func (w *Worker) recoverUnfinished() {
	w.removeScripts()
	now := time.Now().UTC()
	tl, _ := w.ledger.(treeLedger)
	for _, id := range w.ledger.Unfinished() {
		r := wire.Result{ExecID: id, State: wire.StateKilled, Reason: ReasonAgentRestarted, FinishedAt: now}
		if tl != nil {
			if err := w.killLeftover(id, tl.Tree(id)); err != nil {
				w.log.Error("cannot kill what is left of a run the agent did not finish", "exec_id", id, "err", err)
				r.State, r.Reason = wire.StateFailed, ReasonAgentRestarted+"; what was left of the run could not be killed: "+err.Error()
			}
		}
		w.report(r)
		if err := w.ledger.Finish(id); err != nil {
			w.log.Error("ledger", "err", err)
		}
	}
}

// killLeftover kills what is left of the recorded process tree of an
// execution (none recorded: nothing to do).
func (w *Worker) killLeftover(execID string, recorded []byte) error {
	if recorded == nil {
		return nil
	}
	var t runner.Tree
	if err := json.Unmarshal(recorded, &t); err != nil {
		return fmt.Errorf("recorded process tree: %w", err)
	}
	n, err := runner.KillLeftover(t)
	if n > 0 {
		w.log.Warn("killed the processes a run left when the agent stopped", "exec_id", execID, "processes", n, "pgid", t.PGID)
	}
	return err
}

// removeScripts removes the script files that runs of an earlier agent
// left in DataDir/scripts (no run of this one has started yet).
func (w *Worker) removeScripts() {
	if w.cfg.DataDir == "" {
		return
	}
	files, _ := filepath.Glob(filepath.Join(w.cfg.DataDir, "scripts", "kanade-*"))
	for _, f := range files {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.log.Warn("cannot remove a script file left by an earlier run", "file", f, "err", err)
		}
	}
}
