package wire

// Direction says which side publishes on a subject of the contract.
type Direction int

// Directions.
const (
	// ToAgents: the server publishes, agents subscribe.
	ToAgents Direction = iota
	// FromAgents: agents publish or request, the server (or its broker
	// account: JetStream) receives.
	FromAgents
	// ServerOnly: the subject never reaches an agent.
	ServerOnly
)

// ContractSubject is one family of subjects of the wire contract.
type ContractSubject struct {
	Name string
	// Pattern matches every subject of the family.
	Pattern   string
	Direction Direction
	// Stream: requests on it are answered with several messages (catch-up).
	Stream bool
	// Share: the server must know which credential sent a request on it
	// (enrollment, renewal, catch-up), so the broker passes that along.
	Share bool
}

// Contract lists every subject family agents and the server exchange.
// The brokers' account configuration (what crosses between the server's
// account and the endpoints' account) is derived from it, and the
// hostile-endpoint tests probe every family, so a subject added here is
// configured and probed without anyone remembering to.
func Contract() []ContractSubject {
	return []ContractSubject{
		{Name: "commands", Pattern: StreamExecSubjects, Direction: ToAgents},
		{Name: "kill", Pattern: KillWildcard, Direction: ToAgents},
		{Name: "control", Pattern: ControlWildcard, Direction: ToAgents},
		{Name: "results", Pattern: ResultWildcard, Direction: FromAgents},
		{Name: "output", Pattern: OutputWildcard, Direction: FromAgents},
		{Name: "heartbeat", Pattern: HeartbeatWildcard, Direction: FromAgents},
		{Name: "inventory", Pattern: InventoryWildcard, Direction: FromAgents},
		{Name: "catch-up", Pattern: CatchupWildcard, Direction: FromAgents, Stream: true, Share: true},
		{Name: "enrollment", Pattern: EnrollSubject, Direction: FromAgents, Share: true},
		{Name: "renewal", Pattern: RenewWildcard, Direction: FromAgents, Share: true},
		{Name: "read pins", Pattern: KVDirectGetPrefix(KVScriptCurrent) + ".>", Direction: FromAgents},
		{Name: "read revoked flags", Pattern: KVDirectGetPrefix(KVScriptStatus) + ".>", Direction: FromAgents},
		{Name: "read the emergency stop", Pattern: KVDirectGetPrefix(KVFleet) + ".>", Direction: FromAgents},
		{Name: "update download permits", Pattern: UpdatePermitWildcard, Direction: FromAgents},
		{Name: "read releases", Pattern: ReleaseReadSubject, Direction: FromAgents, Stream: true},
		{Name: "audit", Pattern: StreamAuditSubjects, Direction: ServerOnly},
	}
}
