//go:build windows

package runner

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/kanadehq/kanade/agent/wire"
)

// pinThread is false: a Job Object is not tied to a thread.
const pinThread = false

// killedExitCode is the exit code that TerminateJobObject gives every
// process of a killed tree.
const killedExitCode = 137

var (
	ntdll           = windows.NewLazySystemDLL("ntdll.dll")
	procResume      = ntdll.NewProc("NtResumeProcess")
	procWineVersion = ntdll.NewProc("wine_get_version")
)

// stubReason reports the PowerShell of Wine, a stub that prints nothing and
// exits 0: running a script with it would report a false success.
func stubReason(shell, prog string) string {
	if shell == wire.ShellPowerShell && procWineVersion.Find() == nil {
		return "powershell is a stub under Wine (it prints nothing and exits 0)"
	}
	return ""
}

// prepare makes the child start suspended (so it can join the job before it
// can start anything) and without a window, with cmdLine as its raw command
// line when it is not "".
func prepare(cmd *exec.Cmd, cmdLine string) {
	cmd.SysProcAttr = &syscall.SysProcAttr{
		CreationFlags: windows.CREATE_SUSPENDED | windows.CREATE_NO_WINDOW,
		CmdLine:       cmdLine,
	}
}

// tree is the Job Object that holds the process tree of one run.
type tree struct {
	job  windows.Handle
	proc windows.Handle
}

// startTree starts cmd suspended, assigns it to a new Job Object that kills
// its processes when the job is closed, and resumes it. The job's handle
// is not inheritable and is the only one: when the agent stops or crashes
// the system closes it, and the job kills the whole tree. If any step after
// the start fails, the child is killed and reaped before the error returns.
func startTree(cmd *exec.Cmd) (*tree, error) {
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return nil, fmt.Errorf("create job object: %w", err)
	}
	info := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{
		BasicLimitInformation: windows.JOBOBJECT_BASIC_LIMIT_INFORMATION{
			LimitFlags: windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
		},
	}
	if _, err := windows.SetInformationJobObject(job, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		windows.CloseHandle(job)
		return nil, fmt.Errorf("set job object limits: %w", err)
	}
	if err := cmd.Start(); err != nil {
		windows.CloseHandle(job)
		return nil, err
	}
	t := &tree{job: job}
	abort := func(err error) (*tree, error) {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, errors.Join(err, t.close())
	}
	// The pid cannot be reused yet: cmd.Process holds a handle to it.
	const access = windows.PROCESS_SET_QUOTA | windows.PROCESS_TERMINATE |
		windows.PROCESS_SUSPEND_RESUME | windows.SYNCHRONIZE
	t.proc, err = windows.OpenProcess(access, false, uint32(cmd.Process.Pid))
	if err != nil {
		return abort(fmt.Errorf("open process: %w", err))
	}
	if err := windows.AssignProcessToJobObject(job, t.proc); err != nil {
		return abort(fmt.Errorf("assign process to job object: %w", err))
	}
	if err := procResume.Find(); err != nil {
		return abort(fmt.Errorf("resume process: %w", err))
	}
	if r, _, _ := procResume.Call(uintptr(t.proc)); r != 0 {
		return abort(fmt.Errorf("resume process: %w", windows.NTStatus(r)))
	}
	return t, nil
}

// identity is empty: the job holds the tree, and the agent's handle is
// its only one, so the tree dies with the agent (KILL_ON_JOB_CLOSE) and a
// restarted agent has nothing to find.
func (t *tree) identity(token string) Tree { return Tree{} }

// KillLeftover has nothing to do on Windows: a run's tree died with the
// agent's handle to its Job Object.
func KillLeftover(Tree) (int, error) { return 0, nil }

// kill terminates every process in the job.
func (t *tree) kill() error {
	if err := windows.TerminateJobObject(t.job, killedExitCode); err != nil {
		return fmt.Errorf("terminate job object: %w", err)
	}
	return nil
}

// close kills what is left in the job and closes the handles; closing the
// last handle of the job would also kill its processes
// (JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE).
func (t *tree) close() error {
	err := t.kill()
	if t.proc != 0 {
		err = errors.Join(err, windows.CloseHandle(t.proc))
		t.proc = 0
	}
	if t.job != 0 {
		err = errors.Join(err, windows.CloseHandle(t.job))
		t.job = 0
	}
	return err
}
