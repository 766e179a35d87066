package views

// SystemModel is Admin › System: the server's health, its volumes, every
// stream and bucket against its limit, each consumer's backlog, the
// database's size and which replica leads what.
type SystemModel struct {
	Status    string // "ok", "warning" or "unavailable"
	CheckedAt TimeText
	// Problems make the server unavailable; Warnings do not.
	Problems, Warnings []string
	WarnPercent        int
	Volumes            []VolumeRow
	Streams            []StreamRow
	Consumers          []ConsumerRow
	Broker             BrokerFacts
	Database           DatabaseFacts
	Leaders            []LeaderRow
	// Error is set when the streams could not be listed.
	Error string
}

// VolumeRow is one volume the server writes to.
type VolumeRow struct {
	Path, Roles string // Roles: "nats, data, database"
	Total, Free string
	UsedPercent int
	Status      string // "ok", "warning" or "unavailable"
}

// StreamRow is one stream or KV bucket.
type StreamRow struct {
	Name, Kind  string // Kind: "stream" or "bucket"
	Messages    string
	Bytes       string
	Limit       string // max_bytes; "none" when unbounded
	UsedPercent int
	// Setting is its [streams] key, with "(auto)" when sized from the volume.
	Setting    string
	Leader     string
	WriteError string
	Consumers  int
}

// ConsumerRow is one consumer of a stream.
type ConsumerRow struct {
	Stream, Name        string
	Pending, AckPending string
	Leader              string
}

// BrokerFacts describe the broker and its storage plan.
type BrokerFacts struct {
	Embedded                     bool
	StoreDir                     string
	Reserved, MaxStore, Headroom string
	Restarts                     int
	LastRestart                  TimeText
	LastRestartError             string
}

// DatabaseFacts are the database's driver and size.
type DatabaseFacts struct {
	Driver, Size, Error string
}

// LeaderRow says which replica does one kind of work.
type LeaderRow struct {
	Work, Replica string
}
