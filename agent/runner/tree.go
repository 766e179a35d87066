package runner

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// TreeEnv is the environment variable every run's child gets, holding a
// random token of its own (Tree.Token): the processes it starts inherit it,
// which lets a restarted agent tell what is left of the run from processes
// that only reuse its numbers.
const TreeEnv = "KANADE_RUN_TOKEN"

// Tree identifies the process tree of a run once the agent that started
// it is gone. Spec.OnStart hands it out when the run starts; the next
// agent gives it to KillLeftover. On Windows it is empty: the tree is in a
// Job Object that kills it when the agent's handle closes, a crash
// included.
type Tree struct {
	// PGID is the process group: the main process's pid (0: no group).
	PGID int `json:"pgid,omitempty"`
	// Start is when the main process started, in the OS's own units
	// (Linux: clock ticks after boot; macOS: microseconds since 1970);
	// 0 when it could not be read.
	Start uint64 `json:"start,omitempty"`
	// Boot identifies the boot the run started in (Linux's boot_id); a
	// tree of an earlier boot is gone.
	Boot string `json:"boot,omitempty"`
	// Token is the value of TreeEnv in the tree's environment.
	Token string `json:"token,omitempty"`
}

// Empty reports whether t identifies nothing that could be left over.
func (t Tree) Empty() bool { return t.PGID <= 0 }

// newTreeToken returns a fresh random token for TreeEnv.
func newTreeToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("tree token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// member is a process found in a tree's process group.
type member struct {
	pid    int
	start  uint64 // in Tree.Start's units
	zombie bool   // it has exited and waits to be reaped
}

// liveCount counts the members that have not exited.
func liveCount(members []member) int {
	n := 0
	for _, m := range members {
		if !m.zombie {
			n++
		}
	}
	return n
}

// ownsGroup decides whether the processes now in group t.PGID (members)
// are what is left of the tree t. leader is the process whose pid is
// t.PGID, in the group or not, nil if there is none. A pid is not reused
// while a process group of that number exists, so the group is the tree
// when its main process is still there with the recorded start time, and
// a process of that pid with another start time means the tree is gone.
// Once the main process is gone (on Linux the parent-death signal kills it
// with the agent) the number may have been reused for a new group after
// the whole tree ended; the group is then the tree only if one of its
// processes started no earlier than the tree and carries the tree's token
// in its environment (env reads a process's environment).
func ownsGroup(t Tree, leader *member, members []member, env func(pid int) []string) bool {
	if leader != nil && t.Start != 0 {
		return leader.start == t.Start
	}
	if t.Token == "" {
		return false
	}
	want := TreeEnv + "=" + t.Token
	for _, m := range members {
		if t.Start != 0 && m.start < t.Start {
			continue
		}
		for _, kv := range env(m.pid) {
			if kv == want {
				return true
			}
		}
	}
	return false
}

// parseProcStat reads the state, the process group and the start time
// (clock ticks after boot) from a Linux /proc/PID/stat line: "pid (comm)
// state ppid pgrp … starttime …", where comm may hold spaces and
// parentheses.
func parseProcStat(b []byte) (state byte, pgrp int, start uint64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, fmt.Errorf("stat: no command name in %q", b)
	}
	// Fields after the command, counted from state (field 3 of proc(5)):
	// pgrp is field 5, starttime field 22.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, 0, 0, fmt.Errorf("stat: %d fields after the command, want at least 20", len(f))
	}
	pgrp, err = strconv.Atoi(f[2])
	if err != nil {
		return 0, 0, 0, fmt.Errorf("stat: pgrp: %w", err)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("stat: starttime: %w", err)
	}
	return f[0][0], pgrp, start, nil
}

// splitEnviron splits a NUL-separated environment (Linux
// /proc/PID/environ) into its entries.
func splitEnviron(b []byte) []string {
	var out []string
	for _, kv := range bytes.Split(b, []byte{0}) {
		if len(kv) > 0 {
			out = append(out, string(kv))
		}
	}
	return out
}

// procArgsEnv returns the environment from macOS's kern.procargs2 of a
// process: argc (a 32-bit integer), the executable's path, NUL padding,
// argc arguments, then the environment, each NUL-terminated, up to an
// empty string.
func procArgsEnv(b []byte) []string {
	if len(b) < 4 {
		return nil
	}
	argc := int(binary.LittleEndian.Uint32(b))
	b = b[4:]
	// The executable's path, then the padding after it.
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return nil
	}
	b = b[i:]
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	for ; argc > 0 && len(b) > 0; argc-- {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return nil
		}
		b = b[i+1:]
	}
	var env []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0)
		if i <= 0 {
			break
		}
		env = append(env, string(b[:i]))
		b = b[i+1:]
	}
	return env
}
