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
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            throw Failure(description: "cannot resolve \(host)")
        }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            throw Failure(description: "connect to \(host):\(port): \(String(cString: strerror(errno)))")
        }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "send: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "recv: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            received.append(contentsOf: buffer[..<n])
            if let response = try? parseResponse(received), response.complete { return response.value }
        }
        guard let response = try? parseResponse(received) else {
            throw Failure(description: "connection closed before a full HTTP response (\(received.count) bytes)")
        }
        return response.value
    }

    static func parseResponse(_ bytes: [UInt8]) throws -> (value: RawHTTPResponse, complete: Bool) {
        guard let split = bytes.firstRange(of: [13, 10, 13, 10] as [UInt8]) else {
            throw Failure(description: "incomplete head")
        }
        let lines = String(decoding: bytes[..<split.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ", maxSplits: 2)
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
            throw Failure(description: "bad status line \(lines[0])")
        }
        let headers = lines.dropFirst().compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        let body = Array(bytes[split.upperBound...])
        let length = headers.first { $0.0.lowercased() == "content-length" }.flatMap { Int($0.1) }
        let complete = length.map { body.count >= $0 } ?? false
        return (
            RawHTTPResponse(status: status, headers: headers, body: length.map { Array(body.prefix($0)) } ?? body),
            complete
        )
    }
}
