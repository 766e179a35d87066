package views

// BackupsModel is Settings › Backups: the newest backup of this server's
// data directory and how to make one.
type BackupsModel struct {
	// Has is false when no backup was made (or its record is unreadable: Problem).
	Has      bool
	At       TimeText
	File     string
	Size     string
	Database bool
	// Driver is the database the server runs on.
	Driver  string
	Problem string
}
