package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"gopkg.in/natefinch/lumberjack.v2"
)

// The agent's log file: DATA/logs/agent.log, rotated at logMaxMiB with
// logBackups older files kept beside it (agent-<time>.log).
const (
	logDir     = "logs"
	logFile    = "agent.log"
	logMaxMiB  = 10
	logBackups = 5
)

// openLog returns the agent's logger: the log file in dataDir (which
// must exist), and stderr as well when the agent runs in a console (a
// service has none). The closer closes the file.
func openLog(dataDir, level string, stderr io.Writer, interactive bool) (*slog.Logger, io.Closer, error) {
	dir := filepath.Join(dataDir, logDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("log directory: %w", err)
	}
	path := filepath.Join(dir, logFile)
	// lumberjack opens the file on the first write and drops the
	// error there; open it once now so that a file the agent cannot
	// write is reported at the start.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("log file: %w", err)
	}
	f.Close()
	lj := &lumberjack.Logger{Filename: path, MaxSize: logMaxMiB, MaxBackups: logBackups}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler = slog.NewTextHandler(lj, opts)
	if interactive {
		h = slog.NewMultiHandler(h, slog.NewTextHandler(stderr, opts))
	}
	return slog.New(h), lj, nil
}
