// Package wire is the contract between the kanade server and its agents:
// every NATS subject, stream and message type, and the validation of the
// IDs that appear in subjects. Both binaries import it; it imports only the
// standard library.
//
// Readers are lenient (unknown JSON fields are ignored, so old agents keep
// working during an upgrade); writers validate strictly with the Validate
// methods before publishing.
package wire

// ProtocolVersion is the version of this contract. Agents send it in every
// heartbeat and the server gates features on it.
//
//	1 (2026-11-28): commands, kill, results, output, heartbeat, control.
//	2 (2026-12-06): results and output on results.<pc> and output.<pc>
//	  (the body names the execution) instead of results.<exec>.<pc> and
//	  output.<exec>.<pc>; catch-up after a (re)connect is a request to
//	  the server (CatchupSubject) instead of the agent's own consumers on
//	  the EXEC stream. Agent credentials allow only version 2 (no agent
//	  of version 1 was released); the server still reads results stored
//	  in the version 1 form.
//	3 (2026-12-08): agent self-update: update commands (Command.Kind,
//	  UpdateCommand), release keys (EnrollReply.ReleaseKeys,
//	  ControlReleaseKeys), download permits and direct reads of the
//	  release bucket. An agent of version 2 refuses an update command as
//	  invalid (it has no script).
const ProtocolVersion = 3
