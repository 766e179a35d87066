package runner

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestOwnsGroup(t *testing.T) {
	t.Parallel()
	const token = "0123456789abcdef"
	tagged := []string{"PATH=/bin", TreeEnv + "=" + token}
	env := map[int][]string{
		100: tagged,                                // the main process
		101: tagged,                                // a child that kept the environment
		102: {"PATH=/bin"},                         // a child that dropped it
		103: {TreeEnv + "=" + "another-run-token"}, // another run's
	}
	read := func(pid int) []string { return env[pid] }
	tree := Tree{PGID: 100, Start: 5000, Token: token}
	tests := []struct {
		name    string
		t       Tree
		leader  *member
		members []member
		want    bool
	}{
		{"main process with its start time", tree, &member{pid: 100, start: 5000}, []member{{pid: 100, start: 5000}, {pid: 102, start: 5100}}, true},
		{"main process with its start time, the rest untagged", tree, &member{pid: 100, start: 5000}, []member{{pid: 100, start: 5000}}, true},
		{"pid reused by another process", tree, &member{pid: 100, start: 9000}, []member{{pid: 100, start: 9000}, {pid: 101, start: 9100}}, false},
		{"main process gone, a tagged child left", tree, nil, []member{{pid: 102, start: 5100}, {pid: 101, start: 5200}}, true},
		{"main process gone, only untagged children", tree, nil, []member{{pid: 102, start: 5100}}, false},
		{"main process gone, another run's token", tree, nil, []member{{pid: 103, start: 5100}}, false},
		{"main process gone, a tagged process older than the tree", tree, nil, []member{{pid: 101, start: 4000}}, false},
		{"start time unknown, tagged", Tree{PGID: 100, Token: token}, &member{pid: 100, start: 7}, []member{{pid: 100, start: 7}}, true},
		{"start time unknown, untagged", Tree{PGID: 102, Token: token}, &member{pid: 102, start: 7}, []member{{pid: 102, start: 7}}, false},
		{"no token, main process gone", Tree{PGID: 100, Start: 5000}, nil, []member{{pid: 101, start: 5100}}, false},
		{"nothing left", tree, nil, nil, false},
	}
	for _, tt := range tests {
		if got := ownsGroup(tt.t, tt.leader, tt.members, read); got != tt.want {
			t.Errorf("%s: ownsGroup = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestLiveCount(t *testing.T) {
	t.Parallel()
	members := []member{{pid: 1}, {pid: 2, zombie: true}, {pid: 3}}
	if got := liveCount(members); got != 2 {
		t.Errorf("liveCount = %d, want 2 (one zombie of three)", got)
	}
}

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		in        string
		wantState byte
		wantPgrp  int
		wantStart uint64
		wantErr   bool
	}{
		{"sh", "4242 (sh) S 4100 4242 4100 0 -1 4194560 112 0 0 0 0 0 0 0 20 0 1 0 1234567 2600960 226 18446744073709551615 1 1 0 0 0 0 0 0 65538 0 0 0 17 1 0 0 0 0 0\n", 'S', 4242, 1234567, false},
		{"a name with spaces and parentheses", "77 (a (b) c) Z 1 70 70 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0\n", 'Z', 70, 99, false},
		{"no name", "77 a R 1", 0, 0, 0, true},
		{"too short", "77 (sh) S 1 70\n", 0, 0, 0, true},
		{"not a number", "77 (sh) S 1 x 70 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99\n", 0, 0, 0, true},
	}
	for _, tt := range tests {
		state, pgrp, start, err := parseProcStat([]byte(tt.in))
		if (err != nil) != tt.wantErr || state != tt.wantState || pgrp != tt.wantPgrp || start != tt.wantStart {
			t.Errorf("%s: parseProcStat = %q, %d, %d, %v; want %q, %d, %d, error %v", tt.name, state, pgrp, start, err, tt.wantState, tt.wantPgrp, tt.wantStart, tt.wantErr)
		}
	}
}

func TestSplitEnviron(t *testing.T) {
	t.Parallel()
	got := splitEnviron([]byte("A=1\x00B=x y\x00" + TreeEnv + "=t\x00"))
	if want := []string{"A=1", "B=x y", TreeEnv + "=t"}; !slices.Equal(got, want) {
		t.Errorf("splitEnviron = %q, want %q", got, want)
	}
}

func TestProcArgsEnv(t *testing.T) {
	t.Parallel()
	// kern.procargs2 of `sh /tmp/kanade-1.sh` on macOS: argc, the
	// executable, padding, the arguments, the environment, then the
	// strings the kernel adds for the loader after an empty one.
	b := []byte("\x02\x00\x00\x00/bin/sh\x00\x00\x00\x00\x00sh\x00/tmp/kanade-1.sh\x00" +
		"PATH=/usr/bin:/bin\x00" + TreeEnv + "=abc\x00\x00executable_path=/bin/sh\x00")
	want := []string{"PATH=/usr/bin:/bin", TreeEnv + "=abc"}
	if diff := cmp.Diff(want, procArgsEnv(b)); diff != "" {
		t.Errorf("procArgsEnv mismatch (-want +got):\n%s", diff)
	}
	for _, junk := range [][]byte{nil, {1, 0}, []byte("\x05\x00\x00\x00/bin/sh"), []byte("\x09\x00\x00\x00/bin/sh\x00a\x00")} {
		if got := procArgsEnv(junk); len(got) != 0 {
			t.Errorf("procArgsEnv(%q) = %q, want nothing", junk, got)
		}
	}
}
