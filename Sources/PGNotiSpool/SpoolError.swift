#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

public struct SpoolError: Error, Equatable, CustomStringConvertible {
    /// The call that failed ("open", "fsync", "rename", ...).
    public let operation: String
    public let path: String
    /// errno at the time of failure, or nil for failures we detect ourselves.
    public let code: Int32?
    public let message: String

    init(_ operation: String, path: String, errno code: Int32) {
        self.operation = operation
        self.path = path
        self.code = code
        self.message = String(cString: strerror(code))
    }

    init(_ operation: String, path: String, message: String) {
        self.operation = operation
        self.path = path
        self.code = nil
        self.message = message
    }

    public var description: String { "\(operation)(\(path)): \(message)" }
}
