//go:build !windows

package update

import (
	"fmt"
	"os"
	"syscall"
)

// exeSuffix ends the name of a staged binary.
const exeSuffix = ""

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Exec replaces this process by the agent's binary, with the same
// arguments and environment (the process ID stays, so whatever started
// the agent keeps following it). It returns only when that fails.
func (r *Restart) Exec() error {
	argv := append([]string{r.Executable}, r.Args...)
	if err := syscall.Exec(r.Executable, argv, os.Environ()); err != nil {
		return fmt.Errorf("restart %s: %w", r.Executable, err)
	}
	return nil
}
