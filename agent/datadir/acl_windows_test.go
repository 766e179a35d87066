package datadir

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unsafe"

	"golang.org/x/sys/windows"
)

// underWine reports whether the test runs under Wine (its ntdll exports
// wine_get_version).
func underWine() bool {
	return windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
}

// ace is one entry of a DACL.
type ace struct {
	sid        string
	typ, flags byte
	mask       uint32
}

// readDACL returns path's DACL entries and whether the DACL is protected.
func readDACL(t *testing.T, path string) (entries []ace, protected bool) {
	t.Helper()
	sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		t.Fatalf("GetNamedSecurityInfo(%s): %v", path, err)
	}
	control, _, err := sd.Control()
	if err != nil {
		t.Fatal(err)
	}
	dacl, _, err := sd.DACL()
	if err != nil || dacl == nil {
		t.Fatalf("%s: no DACL (%v): everyone has access", path, err)
	}
	for i := range uint32(dacl.AceCount) {
		var a *windows.ACCESS_ALLOWED_ACE
		if err := windows.GetAce(dacl, i, &a); err != nil {
			t.Fatal(err)
		}
		sid := (*windows.SID)(unsafe.Pointer(&a.SidStart))
		entries = append(entries, ace{sid: sid.String(), typ: a.Header.AceType, flags: a.Header.AceFlags, mask: uint32(a.Mask)})
	}
	return entries, control&windows.SE_DACL_PROTECTED != 0
}

// checkDACL checks that entries allow full access to exactly the SIDs in
// want (inherited ones, if inherited is set), and nothing else.
func checkDACL(t *testing.T, path string, entries []ace, want []string, inherited bool) {
	t.Helper()
	const fileAllAccess = windows.STANDARD_RIGHTS_REQUIRED | windows.SYNCHRONIZE | 0x1ff
	var sids []string
	for i, a := range entries {
		if a.typ != windows.ACCESS_ALLOWED_ACE_TYPE {
			t.Errorf("%s: ACE %d (%s) has type %d, want access allowed", path, i, a.sid, a.typ)
		}
		if a.mask&fileAllAccess != fileAllAccess {
			t.Errorf("%s: ACE %d (%s) grants %#x, want full access", path, i, a.sid, a.mask)
		}
		if inherited && a.flags&windows.INHERITED_ACE == 0 {
			t.Errorf("%s: ACE %d (%s) was not inherited", path, i, a.sid)
		}
		sids = append(sids, a.sid)
	}
	slices.Sort(sids)
	if sids = slices.Compact(sids); !slices.Equal(sids, want) {
		t.Errorf("%s: ACEs for %v, want %v", path, sids, want)
	}
}

// TestPrepareACL reads the security descriptor back: only SYSTEM and
// Administrators (and the user, when not elevated) have access, nothing
// is inherited from the parent, and files inside inherit the same.
func TestPrepareACL(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kanade")
	if _, err := Prepare(dir); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "identity.nk")
	if err := os.WriteFile(key, []byte("seed"), 0o600); err != nil {
		t.Fatal(err)
	}
	want := []string{"S-1-5-18", "S-1-5-32-544"}
	if tok := windows.GetCurrentProcessToken(); !tok.IsElevated() {
		u, err := tok.GetTokenUser()
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, u.User.Sid.String())
	}
	slices.Sort(want)
	entries, protected := readDACL(t, dir)
	if underWine() && !protected {
		// Wine 8 makes a descriptor up from the Unix mode bits.
		t.Skipf("Wine did not keep the protected DACL it was given (it read back %v): ACLs need a real Windows", entries)
	}
	if !protected {
		t.Error("the data directory's DACL is not protected: it inherits its parent's entries")
	}
	checkDACL(t, dir, entries, want, false)
	keyEntries, _ := readDACL(t, key)
	checkDACL(t, key, keyEntries, want, true)

	// A directory opened up by hand is repaired.
	everyone := "D:(A;OICI;FA;;;WD)"
	sd, err := windows.SecurityDescriptorFromString(everyone)
	if err != nil {
		t.Fatal(err)
	}
	open, _, _ := sd.DACL()
	if err := windows.SetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT, windows.DACL_SECURITY_INFORMATION|windows.UNPROTECTED_DACL_SECURITY_INFORMATION, nil, nil, open, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Prepare(dir); err != nil {
		t.Fatal(err)
	}
	entries, protected = readDACL(t, dir)
	if !protected {
		t.Error("after repair: the DACL is not protected")
	}
	checkDACL(t, dir, entries, want, false)
}
