import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// An exclusive `flock` on a file in the queue directory, held for as long as the value lives.
/// `flock` locks die with their process, so a crash never leaves the queue locked.
public final class QueueLock: Sendable {
    private let fd: Int32
    public let path: String

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    /// Takes the lock if nobody holds it (nil when someone does) and writes `note` (who holds
    /// it) into the file for operators and other processes to read.
    public static func tryAcquire(path: String, note: String) throws -> QueueLock? {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o660)
        guard fd >= 0 else { throw SpoolError("open", path: path, errno: errno) }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            close(fd)
            if code == EWOULDBLOCK { return nil }
            throw SpoolError("flock", path: path, errno: code)
        }
        let bytes = Array("\(note) \(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, bytes, bytes.count, 0)
        return QueueLock(fd: fd, path: path)
    }

    /// Like `tryAcquire`, but waits up to `timeout` for another holder to let go, without
    /// blocking a thread.
    public static func acquire(path: String, note: String, waitingUpTo timeout: Duration) async throws -> QueueLock? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let lock = try tryAcquire(path: path, note: note) { return lock }
            if ContinuousClock.now >= deadline { return nil }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The first word the current (or last) holder wrote, and its pid.
    public static func holder(path: String) -> (note: String, pid: Int32)? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let words = text.split(whereSeparator: \.isWhitespace)
        guard words.count >= 2, let pid = Int32(words[words.count - 1]) else { return nil }
        return (words.dropLast().joined(separator: " "), pid)
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}

/// `<queue>/.outbox.lock`: whoever drains the outbox into the queue holds it, exclusively.
///
/// The daemon holds it for its whole run; a command that creates events (`quarantine release`,
/// `toss import` …) files them itself only if it can take the lock, and otherwise leaves them
/// to the daemon. Two drainers could both read a row before either deletes it and file it
/// twice; with the lock that cannot happen.
public enum OutboxLock {
    public static let fileName = ".outbox.lock"

    /// Who holds the lock, written into the file: the daemon keeps it for its whole run, a
    /// command only for as long as it files what it committed.
    public enum Role: String, Sendable {
        case daemon, command
    }

    static func path(queue root: String) -> String { root + "/" + fileName }

    /// Takes the lock on the queue at `root` if nobody holds it; nil when someone does.
    public static func tryAcquire(queue root: String, role: Role) throws -> QueueLock? {
        try QueueLock.tryAcquire(path: path(queue: root), note: role.rawValue)
    }

    public static func acquire(queue root: String, role: Role, waitingUpTo timeout: Duration) async throws
        -> QueueLock?
    {
        try await QueueLock.acquire(path: path(queue: root), note: role.rawValue, waitingUpTo: timeout)
    }

    /// The role written by the current (or last) holder, if any.
    public static func holder(queue root: String) -> Role? {
        QueueLock.holder(path: path(queue: root)).flatMap { Role(rawValue: $0.note) }
    }
}
