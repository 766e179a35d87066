package update

import (
	"fmt"
	"os"
	"os/exec"
)

// exeSuffix ends the name of a staged binary: Windows starts only files
// whose extension says they are programs.
const exeSuffix = ".exe"

// syncDir does nothing on Windows: NTFS journals renames, and a directory
// cannot be opened for a flush.
func syncDir(string) error { return nil }

// Exec starts the agent's binary again with the same arguments,
// environment and console, and returns: the caller then exits (Windows
// cannot replace a running process's image).
func (r *Restart) Exec() error {
	cmd := exec.Command(r.Executable, r.Args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("restart %s: %w", r.Executable, err)
	}
	return cmd.Process.Release()
}
