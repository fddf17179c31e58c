import Foundation
import Logging

/// One line per HTTP request at `--log-level debug`: method, URL, status, bytes and
/// time, for the registry client and the apt fetcher. Never a secret: headers are not
/// logged at all (Authorization, cookies), user information is cut out of the URL,
/// and the values of query parameters are kept only for names known to carry none
/// (`digest`, `mount`, `from`, `n`, `last`, `scope`, `service`): an upload location's
/// `_state`, a signed URL's `X-Amz-Signature` or a `token` show as `…`.
public enum HTTPLog {
    /// The logger of HTTP requests (`kiln.http`), created on first use.
    public static let logger = Logger(label: "kiln.http")

    /// Query parameters whose values are not secret.
    static let plainParameters: Set<String> = ["digest", "mount", "from", "n", "last", "scope", "service"]

    /// Logs a request that got a response: `status`, the response's size when it is
    /// announced (`Content-Length`), the request body's size when known, and the time
    /// since `started` (`DispatchTime` nanoseconds).
    public static func response(_ method: String, _ url: String, status: Int, responseBytes: Int64?,
                                requestBytes: Int64? = nil, started: UInt64) {
        guard logger.logLevel <= .debug else { return }
        var line = "\(method) \(redacted(url)) \(status)"
        if let requestBytes, requestBytes > 0 { line += ", sent \(requestBytes) bytes" }
        if let responseBytes { line += ", \(responseBytes) bytes" }
        line += ", \(ProgressBoard.seconds(DispatchTime.now().uptimeNanoseconds &- started))"
        logger.debug("\(line)")
    }

    /// Logs a request that failed before a response.
    public static func failure(_ method: String, _ url: String, error: String, started: UInt64) {
        guard logger.logLevel <= .debug else { return }
        logger.debug("\(method) \(redacted(url)) failed after \(ProgressBoard.seconds(DispatchTime.now().uptimeNanoseconds &- started)): \(error)")
    }

    /// `url` without user information, and with the values of query parameters not
    /// known to be harmless replaced by `…`.
    public static func redacted(_ url: String) -> String {
        guard var c = URLComponents(string: url) else {
            // Not a URL Foundation parses: keep what is before any query or user part.
            let head = url.split(separator: "?", maxSplits: 1).first.map(String.init) ?? url
            return head.contains("@") ? "<url>" : head
        }
        c.user = nil
        c.password = nil
        c.fragment = nil
        let items = c.queryItems
        c.query = nil
        guard let head = c.string else { return "<url>" }
        guard let items, !items.isEmpty else { return head }
        let safe = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: ":-._~/,"))
        return head + "?" + items.map { item in
            let name = item.name.addingPercentEncoding(withAllowedCharacters: safe) ?? "…"
            guard let v = item.value else { return name }
            return name + "=" + (plainParameters.contains(item.name) ? v.addingPercentEncoding(withAllowedCharacters: safe) ?? "…" : "…")
        }.joined(separator: "&")
    }

    /// Now, for `started:`.
    public static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
}
