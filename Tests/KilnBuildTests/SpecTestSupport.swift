import Testing
@testable import KilnBuild

// What every spec test file parses with: one path, one empty environment (so the host's
// SOURCE_DATE_EPOCH never reaches a test), and one way to expect a located error.

let specPath = "/specs/app/spec.yaml"

func parse(_ yaml: String, env: [String: String] = [:]) throws -> Spec {
    try Spec.parse(text: yaml, path: specPath, environment: env)
}

/// The message of the BuildError that parsing `yaml` throws ("" and a failed expectation if none).
func failure(_ yaml: String, env: [String: String] = [:], sourceLocation: Testing.SourceLocation = #_sourceLocation) -> String {
    do {
        let spec = try parse(yaml, env: env)
        Issue.record("expected an error, got \(spec)", sourceLocation: sourceLocation)
        return ""
    } catch let e as BuildError {
        return e.message
    } catch {
        Issue.record("expected a BuildError, got \(error)", sourceLocation: sourceLocation)
        return ""
    }
}

/// Expects an error message starting with `spec.yaml:LINE: ` and containing each of `parts`.
func expectError(_ yaml: String, line: Int, _ parts: String..., env: [String: String] = [:],
                 sourceLocation: Testing.SourceLocation = #_sourceLocation) {
    let m = failure(yaml, env: env, sourceLocation: sourceLocation)
    #expect(m.hasPrefix("\(specPath):\(line): "), "\(m)", sourceLocation: sourceLocation)
    for p in parts {
        #expect(m.contains(p), "\(m) should contain \(p)", sourceLocation: sourceLocation)
    }
}
