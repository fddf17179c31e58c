/// The launcher of an isolated closure as a tiny static x86-64 ELF program, so the image
/// needs no shell: it calls `execve(2)` on the bundled loader with
/// `BEFORE… [argv[0]] AFTER… argv[1]…` and the environment it was given; exit status 127
/// when that fails (as a shell's `exec` of a missing program).
///
/// The code (120 bytes, Kiln's own; `as --64` of the listing below) reads a table that
/// follows it: the count of `BEFORE` pointers and the pointers, whether `argv[0]` goes
/// next (for `--argv0`), the count of `AFTER` pointers and the pointers; the strings come
/// after the table. One `PT_LOAD` segment, read and execute, at 0x400000.
///
/// ```
///     mov rbx, rsp;  mov r12, [rbx]            ; argc
///     lea r13, [rbx+8]                         ; argv
///     lea r14, [r13+r12*8+8]                   ; envp
///     lea rax, [r12+64];  shl rax, 3;  sub rsp, rax;  and rsp, -16
///     mov rdi, rsp;  lea rsi, [rip+table]
///     lodsq;  mov rcx, rax;  rep movsq         ; BEFORE
///     lodsq;  test rax, rax;  jz 1f;  mov rax, [r13];  stosq   ; argv[0]
/// 1:  lodsq;  mov rcx, rax;  rep movsq         ; AFTER
///     test r12, r12;  jz 2f;  lea rsi, [r13+8];  lea rcx, [r12-1];  rep movsq
/// 2:  xor eax, eax;  stosq                     ; NULL
///     mov rsi, rsp;  mov rdi, [rsp];  mov rdx, r14;  mov eax, 59;  syscall   ; execve
///     mov edi, 127;  mov eax, 60;  syscall     ; exit(127)
/// table:
/// ```
enum IsolatedLauncher {
    static let code: [UInt8] = [
        0x48, 0x89, 0xe3, 0x4c, 0x8b, 0x23, 0x4c, 0x8d, 0x6b, 0x08, 0x4f, 0x8d,
        0x74, 0xe5, 0x08, 0x49, 0x8d, 0x44, 0x24, 0x40, 0x48, 0xc1, 0xe0, 0x03,
        0x48, 0x29, 0xc4, 0x48, 0x83, 0xe4, 0xf0, 0x48, 0x89, 0xe7, 0x48, 0x8d,
        0x35, 0x4f, 0x00, 0x00, 0x00, 0x48, 0xad, 0x48, 0x89, 0xc1, 0xf3, 0x48,
        0xa5, 0x48, 0xad, 0x48, 0x85, 0xc0, 0x74, 0x06, 0x49, 0x8b, 0x45, 0x00,
        0x48, 0xab, 0x48, 0xad, 0x48, 0x89, 0xc1, 0xf3, 0x48, 0xa5, 0x4d, 0x85,
        0xe4, 0x74, 0x0c, 0x49, 0x8d, 0x75, 0x08, 0x49, 0x8d, 0x4c, 0x24, 0xff,
        0xf3, 0x48, 0xa5, 0x31, 0xc0, 0x48, 0xab, 0x48, 0x89, 0xe6, 0x48, 0x8b,
        0x3c, 0x24, 0x4c, 0x89, 0xf2, 0xb8, 0x3b, 0x00, 0x00, 0x00, 0x0f, 0x05,
        0xbf, 0x7f, 0x00, 0x00, 0x00, 0xb8, 0x3c, 0x00, 0x00, 0x00, 0x0f, 0x05,
    ]
    static let machineX86_64: UInt16 = 62
    static let baseAddress: UInt64 = 0x40_0000
    /// The code reserves `argc + 64` argument slots.
    static let maxFixedArguments = 60

    /// The launcher for `BEFORE [argv[0]] AFTER argv[1]…`; `before[0]` is the program
    /// execve(2) runs.
    static func x86_64(before: [String], argv0: Bool, after: [String]) -> [UInt8] {
        precondition(!before.isEmpty && before.count + after.count + 1 <= maxFixedArguments)
        let headers = 64 + 56
        let tableStart = headers + code.count
        let tableSize = 8 * (3 + before.count + after.count)
        var strings: [UInt8] = []
        func pointer(_ s: String) -> UInt64 {
            let at = UInt64(tableStart + tableSize + strings.count)
            strings += Array(s.utf8) + [0]
            return baseAddress + at
        }
        var table: [UInt64] = [UInt64(before.count)] + before.map(pointer)
        table.append(argv0 ? 1 : 0)
        table += [UInt64(after.count)] + after.map(pointer)
        let total = UInt64(tableStart + tableSize + strings.count)

        var out: [UInt8] = [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0] + [UInt8](repeating: 0, count: 8)
        func u16(_ v: UInt16) { out += withUnsafeBytes(of: v.littleEndian, Array.init) }
        func u32(_ v: UInt32) { out += withUnsafeBytes(of: v.littleEndian, Array.init) }
        func u64(_ v: UInt64) { out += withUnsafeBytes(of: v.littleEndian, Array.init) }
        // ELF header: ET_EXEC, EM_X86_64, entry at the code, one program header.
        u16(2); u16(machineX86_64); u32(1); u64(baseAddress + UInt64(headers)); u64(64); u64(0)
        u32(0); u16(64); u16(56); u16(1); u16(64); u16(0); u16(0)
        // PT_LOAD, PF_R | PF_X, the whole file.
        u32(1); u32(5); u64(0); u64(baseAddress); u64(baseAddress); u64(total); u64(total); u64(0x1000)
        out += code
        for v in table { u64(v) }
        out += strings
        return out
    }
}
