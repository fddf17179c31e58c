import Foundation
import KilnOCI
import Testing

/// Debian's docker-registry (2.8) has no referrers API, and no registry that has one runs
/// here: this proxy in front of it adds the two parts of distribution-spec 1.1 that Kiln
/// uses — the `OCI-Subject` header on a manifest PUT with a subject, and
/// `GET /v2/<name>/referrers/<digest>` — so the path Kiln takes with such registries
/// (no referrers tag written, the list read from the API) runs against real storage.
final class ReferrersAPIProxy: @unchecked Sendable {
    private let lock = NSLock()
    private var referrers: [String: [[String: Any]]] = [:]
    private var server: MiniServer!
    /// Whether a PUT with a subject is answered with `OCI-Subject` (some registries list
    /// referrers without sending it).
    let sendsSubjectHeader: Bool
    private(set) var apiCalls = 0
    var host: String { "127.0.0.1:\(server.port)" }

    init(upstream: Int, sendsSubjectHeader: Bool) throws {
        self.sendsSubjectHeader = sendsSubjectHeader
        server = try MiniServer { [unowned self] req, c in self.handle(req, c, upstream: upstream) }
    }

    private func handle(_ req: RawRequest, _ c: Int32, upstream: Int) {
        if req.method == "GET", req.path.contains("/referrers/") {
            let subject = String(req.path.split(separator: "/").last ?? "")
            lock.lock()
            apiCalls += 1
            let list = referrers[subject] ?? []
            lock.unlock()
            let index: [String: Any] = ["schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": list]
            let body = try! JSONSerialization.data(withJSONObject: index)
            MiniServer.respond(c, status: 200, headers: ["Content-Type": "application/vnd.oci.image.index.v1+json"], body: Array(body))
            return
        }
        var subject: String?
        if req.method == "PUT", req.path.contains("/manifests/"),
           let m = try? JSONSerialization.jsonObject(with: Data(req.body)) as? [String: Any],
           let s = m["subject"] as? [String: Any], let digest = s["digest"] as? String {
            subject = digest
            var d: [String: Any] = ["mediaType": m["mediaType"] as? String ?? "", "digest": Digest.sha256(req.body).description, "size": req.body.count]
            if let t = m["artifactType"] { d["artifactType"] = t }
            if let a = m["annotations"] { d["annotations"] = a }
            lock.lock(); referrers[digest, default: []].append(d); lock.unlock()
        }
        guard var (head, body) = forward(req, to: upstream) else { MiniServer.reset(c); return }
        if let subject, sendsSubjectHeader {
            head = Array(head.dropLast(2)) + Array("OCI-Subject: \(subject)\r\n\r\n".utf8)
        }
        MiniServer.send(c, head + body)
    }

    func stop() { server.stop() }
    deinit { stop() }
}

@Suite(.serialized) struct ReferrersAPITests {
    @Test(arguments: [true, false])
    func aRegistryWithTheReferrersAPIGetsNoReferrersTag(sendsSubjectHeader: Bool) throws {
        let reg = try TestRegistry()
        let proxy = try ReferrersAPIProxy(upstream: reg.port, sendsSubjectHeader: sendsSubjectHeader)
        let env = try KilnEnv()
        let work = try TempDir()
        let spec = try writeFilesSpec(in: work, marker: "api")
        let ref = "docker://\(proxy.host)/api/img:v1"
        let image = (try parseJSON(try env.kiln(["build", spec, "--push", ref, "--json"]).stdout) as! [String: Any])["manifestDigest"] as! String
        try work.write("a", "a")
        try work.write("b", "b")
        try env.kiln(["attach", ref, work.path + "/a", "--artifact-type", "application/vnd.example.a", "-q"])
        try env.kiln(["attach", ref, work.path + "/b", "--artifact-type", "application/vnd.example.b", "-q"])

        // The registry kept the list: no sha256-<hex> tag was written.
        let tag = "docker://\(reg.host)/api/img:sha256-" + image.dropFirst("sha256:".count)
        #expect(try run("skopeo", ["inspect", "--tls-verify=false", "--raw", tag], check: false).status != 0)
        let listed = try env.kiln(["referrers", ref]).stdout
        #expect(listed.contains("application/vnd.example.a") && listed.contains("application/vnd.example.b"), "\(listed)")
        // The proxy ignores the filter (no OCI-Filters-Applied): Kiln filters.
        let only = try env.kiln(["referrers", ref, "--artifact-type", "application/vnd.example.b"]).stdout
        #expect(only.contains("application/vnd.example.b") && !only.contains("application/vnd.example.a"), "\(only)")
        #expect(proxy.apiCalls >= 2)
    }
}
