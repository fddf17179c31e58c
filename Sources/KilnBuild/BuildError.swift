/// Errors from building an image: each names the spec key or path at fault.
public struct BuildError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
