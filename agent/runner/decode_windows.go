//go:build windows

package runner

import (
	"sync"

	"golang.org/x/sys/windows"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
)

var procOEMCP = windows.NewLazySystemDLL("kernel32.dll").NewProc("GetOEMCP")

// systemLegacy is the code page of output that is not UTF-8: the agent's
// console output code page when it has a console (interactive), else the
// OEM code page (what console programs write: 932 on a Japanese Windows,
// 437 or 850 elsewhere), else the ANSI code page. A code page that is
// UTF-8 or unknown is passed over. It is read once.
var systemLegacy = sync.OnceValue(func() encoding.Encoding {
	var cps []uint32
	if cp, err := windows.GetConsoleOutputCP(); err == nil && cp != 0 {
		cps = append(cps, cp)
	}
	if procOEMCP.Find() == nil {
		if cp, _, _ := procOEMCP.Call(); cp != 0 {
			cps = append(cps, uint32(cp))
		}
	}
	cps = append(cps, windows.GetACP())
	return legacyEncoding(cps...)
})

// codePage returns the encoding of a Windows code page: the OEM and ANSI
// code pages of the Windows languages. nil for UTF-8 (65001, which needs
// no decoding) and for code pages not known here.
func codePage(cp uint32) encoding.Encoding {
	switch cp {
	case 437:
		return charmap.CodePage437
	case 850:
		return charmap.CodePage850
	case 852:
		return charmap.CodePage852
	case 855:
		return charmap.CodePage855
	case 858:
		return charmap.CodePage858
	case 860:
		return charmap.CodePage860
	case 862:
		return charmap.CodePage862
	case 863:
		return charmap.CodePage863
	case 865:
		return charmap.CodePage865
	case 866:
		return charmap.CodePage866
	case 874:
		return charmap.Windows874
	case 932:
		return japanese.ShiftJIS
	case 936:
		return simplifiedchinese.GBK
	case 949:
		return korean.EUCKR
	case 950:
		return traditionalchinese.Big5
	case 1250:
		return charmap.Windows1250
	case 1251:
		return charmap.Windows1251
	case 1252:
		return charmap.Windows1252
	case 1253:
		return charmap.Windows1253
	case 1254:
		return charmap.Windows1254
	case 1255:
		return charmap.Windows1255
	case 1256:
		return charmap.Windows1256
	case 1257:
		return charmap.Windows1257
	case 1258:
		return charmap.Windows1258
	case 20866:
		return charmap.KOI8R
	case 21866:
		return charmap.KOI8U
	case 28591:
		return charmap.ISO8859_1
	case 28605:
		return charmap.ISO8859_15
	case 54936:
		return simplifiedchinese.GB18030
	}
	return nil
}

// legacyEncoding returns the encoding of the first code page in cps that
// is known and is not UTF-8 (65001), or nil.
func legacyEncoding(cps ...uint32) encoding.Encoding {
	for _, cp := range cps {
		if e := codePage(cp); e != nil {
			return e
		}
	}
	return nil
}
