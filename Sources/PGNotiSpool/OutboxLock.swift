import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `<queue>/.outbox.lock`: whoever drains the outbox into the queue holds it, exclusively.
///
/// The daemon holds it for its whole run; a command that creates events (`quarantine release`,
/// `toss import` …) files them itself only if it can take the lock, and otherwise leaves them
/// to the daemon. Two drainers could both read a row before either deletes it and file it
/// twice; with the lock that cannot happen. `flock` locks die with their process, so a crash
/// never leaves the queue locked.
public final class OutboxLock: Sendable {
    public static let fileName = ".outbox.lock"

    /// Who holds the lock, written into the file: the daemon keeps it for its whole run, a
    /// command only for as long as it files what it committed.
    public enum Role: String, Sendable {
        case daemon, command
    }

    private let fd: Int32
    public let path: String

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    /// Takes the lock on the queue at `root` if nobody holds it; nil when someone does.
    public static func tryAcquire(queue root: String, role: Role) throws -> OutboxLock? {
        let path = root + "/" + fileName
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o660)
        guard fd >= 0 else { throw SpoolError("open", path: path, errno: errno) }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            close(fd)
            if code == EWOULDBLOCK { return nil }
            throw SpoolError("flock", path: path, errno: code)
        }
        // Who holds it, for an operator looking at the file and for a command deciding whether
        // to wait.
        let note = Array("\(role.rawValue) \(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, note, note.count, 0)
        return OutboxLock(fd: fd, path: path)
    }

    /// Like `tryAcquire`, but waits up to `timeout` for another holder to let go, without
    /// blocking a thread.
    public static func acquire(queue root: String, role: Role, waitingUpTo timeout: Duration) async throws
        -> OutboxLock?
    {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let lock = try tryAcquire(queue: root, role: role) { return lock }
            if ContinuousClock.now >= deadline { return nil }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The role written by the current (or last) holder, if any.
    public static func holder(queue root: String) -> Role? {
        guard let text = try? String(contentsOfFile: root + "/" + fileName, encoding: .utf8) else { return nil }
        return text.split(separator: " ").first.flatMap { Role(rawValue: String($0)) }
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
