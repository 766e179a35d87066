package service

// Events is the system's log for the service's start, stop and fatal
// errors (the Windows Event Log; kardianos.Logger).
type Events interface {
	Info(v ...any) error
	Error(v ...any) error
}
