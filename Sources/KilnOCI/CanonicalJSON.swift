import Foundation

/// Kiln's one JSON encoding: keys sorted, no insignificant whitespace, `/` unescaped.
/// Every document Kiln writes goes through here, so equal values give equal bytes
/// and therefore equal digests.
public enum CanonicalJSON {
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try e.encode(value))
    }

    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch let DecodingError.dataCorrupted(ctx) {
            throw OCIError.invalidDocument("\(what): malformed JSON (\(ctx.debugDescription))")
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw OCIError.invalidDocument("\(what): missing field \(path(ctx.codingPath + [key]))")
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw OCIError.invalidDocument("\(what): wrong type at \(path(ctx.codingPath))")
        } catch let DecodingError.valueNotFound(_, ctx) {
            throw OCIError.invalidDocument("\(what): missing value at \(path(ctx.codingPath))")
        } catch let e as OCIError {
            throw OCIError.invalidDocument("\(what): \(e)")
        }
    }

    private static func path(_ keys: [CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
    }
}
