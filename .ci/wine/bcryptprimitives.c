/*
 * bcryptprimitives.dll for Wine releases that lack it (Wine 8, Debian 12).
 * Wine 9 and later ship their own, and .ci/wine/wine-env installs this one
 * only into a prefix that has none.
 *
 * 1. Go programs since Go 1.22 load bcryptprimitives.dll at startup for
 *    ProcessPrng and abort before main when it is missing. ProcessPrng here
 *    is RtlGenRandom (advapi32's SystemFunction036), which Wine 8 has.
 *
 * 2. Go 1.26's os.RemoveAll deletes with NtSetInformationFile class
 *    FileDispositionInformationEx (64) and falls back to the older
 *    FileDispositionInformation where Windows answers that the class is
 *    unknown (STATUS_INVALID_INFO_CLASS, Windows before 10 1607). Wine 8
 *    answers STATUS_NOT_IMPLEMENTED instead, which Go reports as an error:
 *    no directory with files in it can be removed (t.TempDir fails every
 *    test). Since every Go program loads this DLL before main, it points
 *    ntdll's export of NtSetInformationFile at a wrapper that turns that
 *    one answer into the one Windows gives. Other calls are untouched.
 *
 * Built by wine-env with:
 *   x86_64-w64-mingw32-gcc -O2 -shared -s -o bcryptprimitives.dll bcryptprimitives.c -ladvapi32
 */
#include <windows.h>
#define SystemFunction036 NTAPI SystemFunction036
#include <ntsecapi.h>
#undef SystemFunction036
#include <string.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE p, SIZE_T n)
{
    while (n > 0) {
        ULONG k = n > 0x40000000 ? 0x40000000 : (ULONG)n;
        if (!RtlGenRandom(p, k))
            return FALSE;
        p += k;
        n -= k;
    }
    return TRUE;
}

#define FILE_DISPOSITION_INFORMATION_EX_CLASS 64
#define STATUS_NOT_IMPLEMENTED_ ((LONG)0xC0000002)
#define STATUS_INVALID_INFO_CLASS_ ((LONG)0xC0000003)

typedef LONG (NTAPI *set_information_file)(HANDLE, void *, void *, ULONG, ULONG);
static set_information_file real_set_information_file;

static LONG NTAPI set_information_file_hook(HANDLE h, void *iosb, void *info, ULONG len, ULONG cls)
{
    LONG status = real_set_information_file(h, iosb, info, len, cls);
    if (status == STATUS_NOT_IMPLEMENTED_ && cls == FILE_DISPOSITION_INFORMATION_EX_CLASS)
        return STATUS_INVALID_INFO_CLASS_;
    return status;
}

/*
 * redirect_export makes GetProcAddress(mod, name) return hook, after
 * storing in *orig the address it returned before. Export
 * entries are 32-bit offsets from the module, so the entry points at a jump
 * placed within 2 GB above it.
 */
static BOOL redirect_export(HMODULE mod, const char *name, void *hook, void **orig)
{
    BYTE *base = (BYTE *)mod;
    IMAGE_NT_HEADERS *nt = (IMAGE_NT_HEADERS *)(base + ((IMAGE_DOS_HEADER *)base)->e_lfanew);
    IMAGE_DATA_DIRECTORY dir = nt->OptionalHeader.DataDirectory[IMAGE_DIRECTORY_ENTRY_EXPORT];
    IMAGE_EXPORT_DIRECTORY *exp = (IMAGE_EXPORT_DIRECTORY *)(base + dir.VirtualAddress);
    DWORD *names = (DWORD *)(base + exp->AddressOfNames);
    WORD *ordinals = (WORD *)(base + exp->AddressOfNameOrdinals);
    DWORD *functions = (DWORD *)(base + exp->AddressOfFunctions);

    for (DWORD i = 0; i < exp->NumberOfNames; i++) {
        if (strcmp((const char *)(base + names[i]), name) != 0)
            continue;
        DWORD *entry = &functions[ordinals[i]];
        BYTE *stub = NULL;
        SIZE_T start = ((SIZE_T)nt->OptionalHeader.SizeOfImage + 0xffff) & ~(SIZE_T)0xffff;
        for (SIZE_T off = start; off < 0x7fff0000 && stub == NULL; off += 0x10000)
            stub = VirtualAlloc(base + off, 4096, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
        if (stub == NULL)
            return FALSE;
        stub[0] = 0xff; /* jmp qword ptr [rip+0] */
        stub[1] = 0x25;
        memset(stub + 2, 0, 4);
        memcpy(stub + 6, &hook, sizeof hook);
        DWORD old;
        if (!VirtualProtect(stub, 4096, PAGE_EXECUTE_READ, &old))
            return FALSE;
        *orig = base + *entry;
        if (!VirtualProtect(entry, sizeof *entry, PAGE_READWRITE, &old))
            return FALSE;
        *entry = (DWORD)(stub - base);
        VirtualProtect(entry, sizeof *entry, old, &old);
        return TRUE;
    }
    return FALSE;
}

BOOL WINAPI DllMain(HINSTANCE inst, DWORD reason, void *reserved)
{
    (void)inst;
    (void)reserved;
    if (reason == DLL_PROCESS_ATTACH) {
        HMODULE ntdll = GetModuleHandleA("ntdll.dll");
        if (ntdll != NULL)
            redirect_export(ntdll, "NtSetInformationFile", (void *)set_information_file_hook, (void **)&real_set_information_file);
    }
    return TRUE;
}
