import Foundation

/// A two-platform OCI layout (tag v1) whose images differ in one file, /arch.txt:
/// `source:` items outside the spec's directory come from each platform's sysroot,
/// here plain directories (text files, no ELF, so no real root file systems needed).
func twoPlatformLayout(in dir: TempDir, format: String = "oci", output: String = "layout") throws -> String {
    try dir.write("sysroot-amd64/data/arch.txt", "amd64\n")
    try dir.write("sysroot-arm64/data/arch.txt", "arm64\n")
    try dir.write("image.yaml", """
        name: kiln-test/platforms
        tag: v1
        platforms: [linux/amd64, linux/arm64/v8]
        sysroots:
          linux/amd64: sysroot-amd64
          linux/arm64/v8: sysroot-arm64
        contents:
          - {source: /data/arch.txt, target: /arch.txt}
        """)
    let out = dir.path + "/" + output
    try kiln(["build", dir.path + "/image.yaml", "--format", format, "-o", out, "--cache-dir", dir.path + "/cache"])
    return out
}
