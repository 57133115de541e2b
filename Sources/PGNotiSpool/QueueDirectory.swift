import CPGNotiSys
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A maildir-style drop box: files are written and made durable under `tmp/`,
/// then renamed into `new/`, so a consumer watching `new/` only ever sees
/// complete files.
public struct QueueDirectory: Sendable {
    public let root: URL
    private var tmpPath: String { root.appendingPathComponent("tmp").path }
    private var newPath: String { root.appendingPathComponent("new").path }

    public init(root: URL) throws {
        self.root = root
        try prepare()
    }

    /// A queue at `root` that is not created or checked yet: the daemon starts (and ACKs into
    /// its outbox) even while the queue's file system is read-only, missing or full, and the
    /// relay prepares the directory once it can.
    public init(unpreparedAt root: URL) {
        self.root = root
    }

    /// Creates `tmp/` and `new/` if missing and makes them durable.
    public func prepare() throws {
        // Consumers in the daemon's group take files by moving them out of new/, so new/ is
        // group-writable; tmp/ is the daemon's alone.
        for (dir, mode) in [(root.path, Self.rootMode), (tmpPath, Self.rootMode), (newPath, Self.newMode)] {
            try Self.makeDirectory(dir, mode: mode)
        }
        // The directories themselves must survive a power cut, or the first
        // delivered file could vanish along with new/.
        try Self.syncDirectory(root.path)
        try Self.syncDirectory(root.deletingLastPathComponent().path)
    }

    /// Writes `payload` so that it appears atomically as `new/<fileName>`,
    /// and returns only once both the content and the rename are on disk.
    /// Delivering the same name again replaces the file, so a replay after a
    /// crash leaves one file per event, not two.
    public func deliver(fileName: String, payload: [UInt8]) throws {
        try place(fileName: fileName, payload: payload)
        try Self.syncDirectory(newPath)
    }

    /// Delivers `items` in order like `deliver(fileName:payload:)`, but makes the batch durable
    /// together: every file is written under `tmp/`, then all of them are made durable at once
    /// (one `syncfs` where the kernel reports writeback errors through it, Linux 5.8 and later;
    /// one fsync per file otherwise), then all are renamed into `new/`, which is synced once.
    /// A file still appears in `new/` only complete and durable.
    ///
    /// Stops at the first failure. Before the renames nothing is visible, and the temporaries are
    /// removed; a rename that fails leaves the items before it in `new/`, synced.
    ///
    /// - Returns: how many leading items are now durably in `new/`, and the
    ///   error that stopped the rest, if any.
    public func deliver(_ items: [(fileName: String, payload: [UInt8])]) -> (delivered: Int, failure: (any Error)?) {
        var written: [(tmp: String, final: String, fd: Int32)] = []
        var failure: (any Error)?
        for item in items {
            do {
                written.append(try writeTemporary(fileName: item.fileName, payload: item.payload))
            } catch {
                failure = error
                break
            }
        }
        guard !written.isEmpty else { return (0, failure) }
        do {
            try makeDurable(written.map { ($0.fd, $0.tmp) })
        } catch {
            for file in written {
                close(file.fd)
                unlink(file.tmp)
            }
            return (0, error)
        }
        var closeFailure: (any Error)?
        for file in written where close(file.fd) != 0 && closeFailure == nil {
            // A deferred write error (NFS, some FUSE): the data may not be what we think.
            closeFailure = SpoolError("close", path: file.tmp, errno: errno)
        }
        if let closeFailure {
            for file in written { unlink(file.tmp) }
            return (0, closeFailure)
        }
        var renamed = 0
        for file in written {
            guard rename(file.tmp, file.final) == 0 else {
                failure = SpoolError("rename", path: "\(file.tmp) -> \(file.final)", errno: errno)
                for rest in written[renamed...] { unlink(rest.tmp) }
                break
            }
            renamed += 1
        }
        guard renamed > 0 else { return (0, failure) }
        do {
            try Self.syncDirectory(newPath)
        } catch {
            // Renamed but not known to be durable: report none, so they are filed again.
            return (0, error)
        }
        return (renamed, failure)
    }

    /// Whether `syncfs(2)` reports writeback errors (Linux 5.8 and later); before that it
    /// returned success even when a file's data never reached the disk.
    static let syncfsReportsErrors: Bool = {
        var name = utsname()
        guard uname(&name) == 0 else { return false }
        let release = withUnsafeBytes(of: &name.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard numbers.count == 2 else { return false }
        return numbers[0] > 5 || (numbers[0] == 5 && numbers[1] >= 8)
    }()

    /// One flush for the whole batch where it is safe, one fsync per file where it is not.
    private func makeDurable(_ files: [(fd: Int32, path: String)]) throws {
        if Self.syncfsReportsErrors && files.count > 1 {
            guard pgnoti_syncfs(files[0].fd) == 0 else { throw SpoolError("syncfs", path: tmpPath, errno: errno) }
            return
        }
        for file in files where fsync(file.fd) != 0 {
            throw SpoolError("fsync", path: file.path, errno: errno)
        }
    }

    /// Creates the temporary file and writes `payload`, without syncing it; returns it open.
    private func writeTemporary(fileName: String, payload: [UInt8]) throws -> (tmp: String, final: String, fd: Int32) {
        try Self.validate(fileName)
        // A private temporary name, so two writers of the same event (say the
        // daemon and a manual replay) cannot truncate each other's file.
        let tmp = "\(tmpPath)/\(fileName).\(getpid()).\(UInt64.random(in: 0 ... .max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, Self.fileMode)
        guard fd >= 0 else { throw SpoolError("open", path: tmp, errno: errno) }
        do {
            // Group consumers must be able to read it whatever umask the daemon runs under.
            guard fchmod(fd, Self.fileMode) == 0 else { throw SpoolError("fchmod", path: tmp, errno: errno) }
            try Self.writeAll(fd: fd, payload, path: tmp)
        } catch {
            close(fd)
            unlink(tmp)
            throw error
        }
        return (tmp, "\(newPath)/\(fileName)", fd)
    }

    /// Writes and fsyncs the file under `tmp/` and renames it into `new/`;
    /// the rename is durable only once the caller has synced `new/`.
    private func place(fileName: String, payload: [UInt8]) throws {
        let (tmp, final, fd) = try writeTemporary(fileName: fileName, payload: payload)
        guard fsync(fd) == 0 else {
            let code = errno
            close(fd)
            unlink(tmp)
            throw SpoolError("fsync", path: tmp, errno: code)
        }
        // close can report a deferred write error (NFS, some FUSE), which
        // would mean the fsync'd data is not what we think it is.
        guard close(fd) == 0 else {
            let code = errno
            unlink(tmp)
            throw SpoolError("close", path: tmp, errno: code)
        }
        guard rename(tmp, final) == 0 else {
            let code = errno
            unlink(tmp)
            throw SpoolError("rename", path: "\(tmp) -> \(final)", errno: code)
        }
    }

    /// Removes what a crash left half-written in `tmp/`. Call at startup,
    /// before anything delivers. Returns how many files were removed.
    @discardableResult
    public func cleanStaleTemporaries() throws -> Int {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: tmpPath)
        } catch {
            throw SpoolError("readdir", path: tmpPath, message: "\(error)")
        }
        var removed = 0
        for name in names {
            let path = "\(tmpPath)/\(name)"
            if unlink(path) == 0 {
                removed += 1
            } else if errno != ENOENT {
                throw SpoolError("unlink", path: path, errno: errno)
            }
        }
        return removed
    }

    /// Writes, syncs and removes a probe file in `tmp/` and checks `new/` is a directory: what
    /// readiness needs to know before claiming the queue can take events.
    public func probeWritable() throws {
        var info = stat()
        guard stat(newPath, &info) == 0 else { throw SpoolError("stat", path: newPath, errno: errno) }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw SpoolError("stat", path: newPath, message: "not a directory")
        }
        let probe = "\(tmpPath)/.probe.\(getpid())"
        let fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, Self.fileMode)
        guard fd >= 0 else { throw SpoolError("open", path: probe, errno: errno) }
        defer { unlink(probe) }
        let ok = write(fd, "x", 1) == 1 && fsync(fd) == 0
        let code = errno
        close(fd)
        guard ok else { throw SpoolError("write", path: probe, errno: code) }
    }

    /// How many events wait in `new/` for a consumer, and the filing time of the oldest (from
    /// its name): the consumer's lag.
    public func pendingNew() -> (count: Int, oldest: Date?) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: newPath) else { return (0, nil) }
        let events = names.filter { $0.hasSuffix(".json") }
        let oldest = events.min().flatMap { Int64($0.prefix(17)) }.map { Date(timeIntervalSince1970: Double($0) / 1e6) }
        return (events.count, oldest)
    }

    // MARK: - Helpers

    private static func validate(_ fileName: String) throws {
        guard QueueFileName.isPlain(fileName) else {
            throw SpoolError("deliver", path: fileName, message: "not a plain file name")
        }
    }

    private static func writeAll(fd: Int32, _ payload: [UInt8], path: String) throws {
        try payload.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw SpoolError("write", path: path, errno: errno)
                }
                offset += n
            }
        }
    }

    static let rootMode: mode_t = 0o750
    static let newMode: mode_t = 0o770
    static let fileMode: mode_t = 0o640

    /// Creates `path` with exactly `mode` (the umask would otherwise strip group write);
    /// an existing directory keeps the mode its operator gave it.
    private static func makeDirectory(_ path: String, mode: mode_t) throws {
        if mkdir(path, mode) == 0 {
            guard chmod(path, mode) == 0 else { throw SpoolError("chmod", path: path, errno: errno) }
            return
        }
        let code = errno
        if code == ENOENT {
            // Missing parents: let FileManager build the chain, then recheck.
            do {
                try FileManager.default.createDirectory(
                    atPath: path, withIntermediateDirectories: true,
                    attributes: [.posixPermissions: Self.rootMode])
            } catch {
                throw SpoolError("mkdir", path: path, message: "\(error)")
            }
            guard chmod(path, mode) == 0 else { throw SpoolError("chmod", path: path, errno: errno) }
            return
        }
        guard code == EEXIST else { throw SpoolError("mkdir", path: path, errno: code) }
        var info = stat()
        guard stat(path, &info) == 0 else { throw SpoolError("stat", path: path, errno: errno) }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw SpoolError("mkdir", path: path, message: "exists and is not a directory")
        }
    }

    static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw SpoolError("open", path: path, errno: errno) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw SpoolError("fsync", path: path, errno: errno) }
    }
}
