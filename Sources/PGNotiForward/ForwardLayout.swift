import Foundation
import PGNotiSpool

#if canImport(Glibc)
    import Glibc
#endif

/// Where a queue consumer keeps what it has taken from `<queue>/new/`:
///
///     <queue>/forward/cur/     claimed, being delivered or waiting for a retry
///     <queue>/forward/done/    delivered (kept for `keep_done_days`)
///     <queue>/forward/failed/  given up on (410, or retries exhausted); `forward retry` brings back
///     <queue>/forward/state/   one small JSON record per event that has failed at least once
///     <queue>/forward/in-flight.json  what the running consumer is delivering right now
///     <queue>/.forward.lock    the pid of the one consumer of this queue (which locks the
///                              queue directory itself: see `ConsumerLock`)
///
/// Every move is a `rename` within one file system, so an event is always in exactly one
/// place, whatever moment a crash picks. The consumer never writes into `new/`.
public struct ForwardLayout: Sendable {
    public static let lockFileName = ".forward.lock"

    public let queue: String
    public var new: String { queue + "/new" }
    public var base: String { queue + "/forward" }
    public var cur: String { base + "/cur" }
    public var done: String { base + "/done" }
    public var failed: String { base + "/failed" }
    public var state: String { base + "/state" }
    public var lock: String { queue + "/" + Self.lockFileName }
    public var inFlightFile: String { base + "/in-flight.json" }

    public init(queue: String) {
        self.queue = queue
    }

    /// Creates the directories (mode 0750, like the queue itself).
    public func create() throws {
        for path in [cur, done, failed, state] {
            do {
                try FileManager.default.createDirectory(
                    atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
            } catch {
                throw ForwardError("cannot create \(path): \(error.localizedDescription)")
            }
        }
    }

    func stateFile(for name: String) -> String { state + "/" + name }

    /// Regular `*.json` files in `directory`, sorted by name (filing order for queue files); dot
    /// files, temporaries, directories, links and anything else that is not a plain file left out.
    static func names(in directory: String) -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name.hasPrefix(".") || !name.hasSuffix(".json") { continue }
            switch Int32(entry.pointee.d_type) {
            case Int32(DT_REG): names.append(name)
            case Int32(DT_UNKNOWN): if isRegularFile(directory + "/" + name) { names.append(name) }
            default: continue
            }
        }
        return names.sorted()
    }

    /// True for a plain file (not a directory, a link or anything else), without following links.
    static func isRegularFile(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
    }

    /// Is `name` one of the consumer's queue files: `*.json`, not a dot file or temporary.
    static func isQueueFileName(_ name: String) -> Bool {
        !name.hasPrefix(".") && name.hasSuffix(".json")
    }

    /// `rename(2)`: atomic within the queue's file system.
    static func move(_ from: String, _ to: String) throws {
        guard rename(from, to) == 0 else {
            throw ForwardError("cannot move \(from) to \(to): \(String(cString: strerror(errno)))")
        }
    }

    /// The event id a queue file name carries (`<micros>-<id>.json`).
    public static func eventID(fromFileName name: String) -> String? {
        guard name.hasSuffix(".json"), let dash = name.firstIndex(of: "-") else { return nil }
        return String(name[name.index(after: dash)..<name.index(name.endIndex, offsetBy: -5)])
    }
}

public struct ForwardError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
