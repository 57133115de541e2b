import Foundation

/// What a finished command printed and how it exited.
public struct ProcessResult: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String
    /// stdout and stderr as one stream when they were merged (`mergeOutput`), else stdout.
    public var output: String { stdout }
}

/// Bytes read from a pipe as they come, and whether the pipe has reached EOF. A thread of its
/// own reads with plain read(2) until EOF: FileHandle's readabilityHandler does not always see
/// the EOF, and a blocking read must never run on the cooperative pool.
public final class PipeCollector: Sendable {
    private struct State: Sendable {
        var data = Data()
        var ended = false
    }

    private let state = Shared(State())

    public init(_ pipe: Pipe) {
        let state = self.state
        let handle = pipe.fileHandleForReading
        let thread = Thread {
            let fd = handle.fileDescriptor
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                let n = read(fd, &buffer, buffer.count)
                if n > 0 {
                    let chunk = Data(buffer[..<n])
                    state.withLock { $0.data.append(chunk) }
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    break
                }
            }
            state.withLock { $0.ended = true }
            withExtendedLifetime(handle) {}
        }
        thread.start()
    }

    public var data: Data { state.withLock { $0.data } }
    public var text: String { String(decoding: data, as: UTF8.self) }
    public var ended: Bool { state.withLock { $0.ended } }
}

/// Runs `executable` to its end without blocking a thread: the output is collected by the pipes'
/// handlers and the exit awaited with task sleeps. Throws if it has not exited within `timeout`
/// (then it is killed).
public func runProcess(
    _ executable: URL, _ arguments: [String], in directory: URL? = nil, environment: [String: String]? = nil,
    stdin: Data? = nil, mergeOutput: Bool = false, timeout: Duration = .seconds(120)
) async throws -> ProcessResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    if let environment { process.environment = environment }
    let out = Pipe()
    let err = mergeOutput ? out : Pipe()
    process.standardOutput = out
    process.standardError = err
    let input = Pipe()
    process.standardInput = stdin == nil ? FileHandle.nullDevice : input
    let stdout = PipeCollector(out)
    let stderr = mergeOutput ? stdout : PipeCollector(err)
    try process.run()
    if let stdin {
        try input.fileHandleForWriting.write(contentsOf: stdin)
        try input.fileHandleForWriting.close()
    }
    do {
        try await waitUntil(timeout: timeout, "\(executable.lastPathComponent) \(arguments) to exit") {
            !process.isRunning
        }
        // What it wrote last may still be in the pipes.
        let readFD = out.fileHandleForReading.fileDescriptor
        do {
            try await waitUntil(timeout: .seconds(10), "the output of \(executable.lastPathComponent) to end") {
                stdout.ended && stderr.ended
            }
        } catch {
            throw HarnessError("\(error); pipe held by \(pipeHolders(readFD))")
        }
    } catch {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        throw error
    }
    return ProcessResult(
        status: process.terminationStatus, stdout: stdout.text, stderr: mergeOutput ? "" : stderr.text)
}

/// The processes that have the pipe behind `fd` open (for a message when its EOF never comes).
func pipeHolders(_ fd: Int32) -> [String] {
    guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)") else {
        return []
    }
    var holders: [String] = []
    for pid in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int(pid) != nil {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        for entry in fds
        where (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(entry)")) == target {
            let command =
                (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8))?
                .replacingOccurrences(of: "\0", with: " ") ?? "?"
            holders.append("\(pid) fd \(entry): \(command.prefix(120))")
        }
    }
    return holders
}
