import KilnRegistry

enum FuzzRegistry {
    static func wwwAuthenticate(_ data: [UInt8]) {
        _ = AuthChallenge.parse(String(decoding: data, as: UTF8.self))
    }
}
