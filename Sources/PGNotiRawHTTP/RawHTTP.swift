import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A PG's request as it appears on the wire, read from a fixture file.
public struct RawHTTPRequest: Sendable, Equatable {
    public var method: String
    public var target: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public static func == (a: RawHTTPRequest, b: RawHTTPRequest) -> Bool {
        a.method == b.method && a.target == b.target && a.body == b.body
            && a.headers.map(\.name) == b.headers.map(\.name) && a.headers.map(\.value) == b.headers.map(\.value)
    }

    public struct ParseError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Parses `METHOD target HTTP/1.1`, headers, a blank line and a body of Content-Length bytes.
    public init(parsing bytes: [UInt8]) throws {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let split = bytes.firstRange(of: separator) else {
            throw ParseError(description: "no blank line (CRLF CRLF) between headers and body")
        }
        let head = String(decoding: bytes[..<split.lowerBound], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ")
        guard requestLine.count == 3 else { throw ParseError(description: "request line is not METHOD TARGET VERSION") }
        method = String(requestLine[0])
        target = String(requestLine[1])
        headers = try lines.map { line in
            guard let colon = line.firstIndex(of: ":") else {
                throw ParseError(description: "header without colon: \(line)")
            }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        let rest = Array(bytes[split.upperBound...])
        if let length = headers.first(where: { $0.name.lowercased() == "content-length" }).flatMap({ Int($0.value) }) {
            guard rest.count >= length else {
                throw ParseError(description: "body shorter than Content-Length \(length)")
            }
            body = Array(rest.prefix(length))
        } else {
            body = rest
        }
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// The same request aimed at another host and path, byte-identical otherwise.
    public func serialized(host: String, target: String) -> [UInt8] {
        var out = "\(method) \(target) HTTP/1.1\r\n"
        var sawHost = false
        for (name, value) in headers {
            if name.lowercased() == "host" {
                out += "Host: \(host)\r\n"
                sawHost = true
            } else {
                out += "\(name): \(value)\r\n"
            }
        }
        if !sawHost { out += "Host: \(host)\r\n" }
        out += "\r\n"
        return Array(out.utf8) + body
    }
}

public struct RawHTTPResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// Plain TCP, one request per connection: exactly the bytes given go out, exactly what comes
/// back is read. For `pgnoti send` and for tests that must speak as a PG does.
public enum RawHTTPClient {
    public struct Failure: Error, CustomStringConvertible { public let description: String }

    public static func exchange(host: String, port: Int, bytes: [UInt8], timeoutSeconds: Int = 10) throws
        -> RawHTTPResponse
    {
        let connection = try RawHTTPConnection(host: host, port: port, timeoutSeconds: timeoutSeconds)
        return try connection.exchange(bytes)
    }

    /// A response head: status, headers, where the body starts and how long it says it is.
    struct Head {
        var status: Int
        var headers: [(name: String, value: String)]
        var bodyStart: Int
        var contentLength: Int?
    }

    static func parseHead(_ bytes: ArraySlice<UInt8>) throws -> Head? {
        guard let split = bytes.firstRange(of: [13, 10, 13, 10] as [UInt8]) else { return nil }
        let lines = String(decoding: bytes[..<split.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ", maxSplits: 2)
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
            throw Failure(description: "bad status line \(lines[0])")
        }
        let headers = lines.dropFirst().compactMap { line -> (name: String, value: String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        let length = headers.first { $0.name.lowercased() == "content-length" }.flatMap { Int($0.value) }
        return Head(status: status, headers: headers, bodyStart: split.upperBound, contentLength: length)
    }

    /// A complete response at the front of `bytes` and how many bytes it took, or nil if more
    /// must be read first. Without Content-Length the body runs to the close of the connection.
    static func parseResponse(_ bytes: ArraySlice<UInt8>) throws -> (value: RawHTTPResponse, consumed: Int)? {
        guard let head = try parseHead(bytes), let length = head.contentLength,
            bytes.endIndex - head.bodyStart >= length
        else { return nil }
        let body = Array(bytes[head.bodyStart..<head.bodyStart + length])
        let response = RawHTTPResponse(status: head.status, headers: head.headers, body: body)
        return (response, head.bodyStart + length - bytes.startIndex)
    }

    /// What the peer sent before it closed the connection.
    static func parseAtClose(_ bytes: ArraySlice<UInt8>) throws -> RawHTTPResponse {
        guard let head = try parseHead(bytes) else {
            throw Failure(description: "connection closed before a full HTTP response (\(bytes.count) bytes)")
        }
        let available = bytes[head.bodyStart...]
        if let length = head.contentLength, available.count < length {
            throw Failure(description: "connection closed after \(available.count) of \(length) body bytes")
        }
        let body = head.contentLength.map { Array(available.prefix($0)) } ?? Array(available)
        return RawHTTPResponse(status: head.status, headers: head.headers, body: body)
    }
}

/// One TCP connection that can carry several requests in turn (keep-alive), for load
/// generators that must not pay a handshake per request. Not thread-safe: one user at a time.
public final class RawHTTPConnection {
    private let fd: Int32
    private var pending: [UInt8] = []
    private var buffer = [UInt8](repeating: 0, count: 16 * 1024)
    /// False once the peer closed or asked to close; open a new connection then.
    public private(set) var isReusable = true

    public init(host: String, port: Int, timeoutSeconds: Int = 10) throws {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            throw RawHTTPClient.Failure(description: "cannot resolve \(host)")
        }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else {
            throw RawHTTPClient.Failure(description: "socket: \(String(cString: strerror(errno)))")
        }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        guard connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw RawHTTPClient.Failure(description: "connect to \(host):\(port): \(reason)")
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Sends `bytes` as they are and reads one response.
    public func exchange(_ bytes: [UInt8]) throws -> RawHTTPResponse {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                isReusable = false
                throw RawHTTPClient.Failure(description: "send: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
        while true {
            if let (response, consumed) = try RawHTTPClient.parseResponse(pending[...]) {
                pending.removeFirst(consumed)
                if response.headers.contains(where: {
                    $0.name.lowercased() == "connection" && $0.value.lowercased() == "close"
                }) {
                    isReusable = false
                }
                return response
            }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n < 0 {
                if errno == EINTR { continue }
                isReusable = false
                throw RawHTTPClient.Failure(description: "recv: \(String(cString: strerror(errno)))")
            }
            if n == 0 {
                isReusable = false
                return try RawHTTPClient.parseAtClose(pending[...])
            }
            pending.append(contentsOf: buffer[..<n])
        }
    }
}
