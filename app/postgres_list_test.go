//go:build !windows

package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/kanadehq/kanade/store/storetest"
)

// The list names test functions of every file; some are built on Unix
// only, and PostgreSQL tests run there (CI).

// serverTests run on PostgreSQL too (TestPostgres/<name>) when
// KANADE_TEST_POSTGRES_DSN is set: every integration test of the server
// but those in sqliteOnly and the browser tests, which exercise the pages
// rather than the database and take most of the package's time.
var serverTests = []struct {
	name string
	fn   func(*testing.T)
}{
	{"TestAgent_RecoversFromServerReset", TestAgent_RecoversFromServerReset},
	{"TestAgent_RevokedSaysSo", TestAgent_RevokedSaysSo},
	{"TestAudit_FailsClosed", TestAudit_FailsClosed},
	{"TestAudit_SchedulerFireFailsClosed", TestAudit_SchedulerFireFailsClosed},
	{"TestBusy_ConcurrentRunsNo500", TestBusy_ConcurrentRunsNo500},
	{"TestDeploy_MismatchWithTheJobsDirectory", TestDeploy_MismatchWithTheJobsDirectory},
	{"TestDeploy_ThreeMistakes", TestDeploy_ThreeMistakes},
	{"TestEmergencyStop", TestEmergencyStop},
	{"TestGroups_ChangeFollowsLive", TestGroups_ChangeFollowsLive},
	{"TestGroups_HeartbeatCannotClaimGroups", TestGroups_HeartbeatCannotClaimGroups},
	{"TestHostileEndpoint", TestHostileEndpoint},
	{"TestIntegration_APIValidation", TestIntegration_APIValidation},
	{"TestIntegration_AgentRestartDoesNotRerun", TestIntegration_AgentRestartDoesNotRerun},
	{"TestIntegration_AuditLog", TestIntegration_AuditLog},
	{"TestIntegration_BrokerRestartLosesNoResult", TestIntegration_BrokerRestartLosesNoResult},
	{"TestIntegration_EnrollmentTokenWithApproval", TestIntegration_EnrollmentTokenWithApproval},
	{"TestIntegration_KillCancelsPendingOfflinePC", TestIntegration_KillCancelsPendingOfflinePC},
	{"TestIntegration_KillKillsTree", TestIntegration_KillKillsTree},
	{"TestIntegration_LiveOutputPerExecution", TestIntegration_LiveOutputPerExecution},
	{"TestIntegration_Metrics", TestIntegration_Metrics},
	{"TestIntegration_MetricsTokenAndListener", TestIntegration_MetricsTokenAndListener},
	{"TestIntegration_OfflineAgentCatchesUp", TestIntegration_OfflineAgentCatchesUp},
	{"TestIntegration_OverlappingTargetsRunOnce", TestIntegration_OverlappingTargetsRunOnce},
	{"TestIntegration_RevokeAgent", TestIntegration_RevokeAgent},
	{"TestIntegration_RunReachesResultRow", TestIntegration_RunReachesResultRow},
	{"TestInventory_AgentToPages", TestInventory_AgentToPages},
	{"TestLost_AgentKilledMidRun", TestLost_AgentKilledMidRun},
	{"TestPing", TestPing},
	{"TestRoleMatrix", TestRoleMatrix},
	{"TestRollout_ApprovalFourEyes", TestRollout_ApprovalFourEyes},
	{"TestRollout_FourEyesFollowsTheIdentity", TestRollout_FourEyesFollowsTheIdentity},
	{"TestRollout_CanaryFailureHalts", TestRollout_CanaryFailureHalts},
	{"TestRollout_RestartDuringDelay", TestRollout_RestartDuringDelay},
	{"TestSchedule_FiresEnableEstop", TestSchedule_FiresEnableEstop},
	{"TestSchedule_Restart", TestSchedule_Restart},
	{"TestSchedule_TwoServersFireOnce", TestSchedule_TwoServersFireOnce},
	{"TestShutdown_WaitAnswers503", TestShutdown_WaitAnswers503},
	{"TestSignIn_OIDCRolesSessionsTokens", TestSignIn_OIDCRolesSessionsTokens},
	{"TestSigning_KeyRotation", TestSigning_KeyRotation},
	{"TestSigning_StolenBrokerCredentialCannotRunCode", TestSigning_StolenBrokerCredentialCannotRunCode},
	{"TestStopTheBleed_DeadlineExpires", TestStopTheBleed_DeadlineExpires},
	{"TestStopTheBleed_KillCancelsJitter", TestStopTheBleed_KillCancelsJitter},
	{"TestStopTheBleed_Layer1_NewestCommandOnly", TestStopTheBleed_Layer1_NewestCommandOnly},
	{"TestStopTheBleed_Layer2_PinnedVersionAndRevoke", TestStopTheBleed_Layer2_PinnedVersionAndRevoke},
	{"TestSwarm_EnrollsAndAnswers", TestSwarm_EnrollsAndAnswers},
}

// sqliteOnly are the server tests that do not run on PostgreSQL, and why.
var sqliteOnly = map[string]string{
	"TestBrokerTLS":                              "the broker's TLS listener; the database plays no part",
	"TestWebTLS":                                 "the web listener's TLS; the database plays no part",
	"TestDownload_InstallCommandEndToEnd":        "agent downloads and the install script; the database plays no part",
	"TestReprovision_StreamsDeletedWhileRunning": "broker streams deleted under the server; the database plays no part",
	"TestInit_WritesSecretsOnceAndServeUsesThem": "the secrets directory; the database plays no part",
	"TestBackup_RestoreKeepsAgentsAndHistory":    "the backup holds the SQLite database; on PostgreSQL the database is pg_dump's",
	"TestUpdateE2E":                              "agent self-update with real processes: releases live in the broker; the database plays a small part",
}

// TestPostgres runs serverTests with every server on PostgreSQL, in
// parallel with each other.
func TestPostgres(t *testing.T) {
	if os.Getenv(storetest.PostgresEnv) == "" {
		t.Skipf("%s is not set: the server's tests ran on SQLite only", storetest.PostgresEnv)
	}
	// Two at a time (-parallel, GOMAXPROCS by default): the tests mostly
	// wait on agents and timers, and each has its own schema, data
	// directory and ports.
	for _, tc := range serverTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t)
		})
	}
}

// TestPostgres_CoversEveryServerTest: every test that starts a server
// (startServer and the helpers that call it) is in serverTests, is a
// browser test, or says in sqliteOnly why it is not; and the names in
// serverTests are the functions they run.
func TestPostgres_CoversEveryServerTest(t *testing.T) {
	starts := serverStartingTests(t)
	listed := map[string]bool{}
	for _, tc := range serverTests {
		fn := runtime.FuncForPC(reflect.ValueOf(tc.fn).Pointer()).Name()
		if !strings.HasSuffix(fn, "."+tc.name) {
			t.Errorf("serverTests: %q runs %s", tc.name, fn)
		}
		if listed[tc.name] {
			t.Errorf("serverTests: %s twice", tc.name)
		}
		listed[tc.name] = true
		if _, ok := sqliteOnly[tc.name]; ok {
			t.Errorf("%s is in serverTests and sqliteOnly", tc.name)
		}
	}
	for _, name := range starts {
		_, skip := sqliteOnly[name]
		if !listed[name] && !skip && !strings.HasPrefix(name, "TestBrowser_") {
			t.Errorf("%s starts a server: add it to serverTests (postgres_test.go), or to sqliteOnly with the reason", name)
		}
	}
	for name := range sqliteOnly {
		if !containsString(starts, name) {
			t.Errorf("sqliteOnly: %s does not start a server (renamed?)", name)
		}
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// serverStartingTests lists the package's Test functions that call
// startServer*, directly or through other functions of the package.
func serverStartingTests(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	calls := map[string]map[string]bool{} // function or method name -> names it calls
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			set := calls[fd.Name.Name]
			if set == nil {
				set = map[string]bool{}
				calls[fd.Name.Name] = set
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				switch x := n.(type) {
				case *ast.CallExpr:
					switch fn := x.Fun.(type) {
					case *ast.Ident:
						set[fn.Name] = true
					case *ast.SelectorExpr:
						set[fn.Sel.Name] = true
					}
				case *ast.Ident: // a function passed as a value
					set[x.Name] = true
				}
				return true
			})
		}
	}
	starts := map[string]bool{"startServerOpts": true}
	for changed := true; changed; {
		changed = false
		for fn, callees := range calls {
			if starts[fn] || fn == postgresRun {
				continue
			}
			for c := range callees {
				if starts[c] {
					starts[fn], changed = true, true
					break
				}
			}
		}
	}
	var out []string
	for fn := range starts {
		if strings.HasPrefix(fn, "Test") && fn != postgresRun {
			out = append(out, fn)
		}
	}
	sort.Strings(out)
	return out
}
