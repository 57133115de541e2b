import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// One consumer per queue.
///
/// The lock is an exclusive `flock` on the **queue directory itself** (opened `O_RDONLY |
/// O_DIRECTORY`): an inode nobody removes by mistake while the queue is in use, so deleting a
/// file cannot let a second consumer in. `<queue>/.forward.lock` is kept only as the place the
/// holder writes its pid for operators (and is also locked, so that a consumer of an older
/// pgnoti, which locked only that file, and this one still exclude each other).
///
/// `flock` locks die with their process: a crash never leaves the queue locked.
public final class ConsumerLock: Sendable {
    private let directory: Int32
    private let file: Int32

    private init(directory: Int32, file: Int32) {
        self.directory = directory
        self.file = file
    }

    /// Takes the lock if nobody holds it; nil when someone does.
    public static func tryAcquire(_ layout: ForwardLayout, note: String = "forward") throws -> ConsumerLock? {
        let directory = open(layout.queue, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else { throw ForwardError("cannot open \(layout.queue): \(errorText())") }
        guard try lock(directory, LOCK_EX, path: layout.queue) else {
            close(directory)
            return nil
        }
        let file = open(layout.lock, O_RDWR | O_CREAT | O_CLOEXEC, 0o660)
        guard file >= 0 else {
            let text = errorText()
            close(directory)
            throw ForwardError("cannot open \(layout.lock): \(text)")
        }
        do {
            guard try lock(file, LOCK_EX, path: layout.lock) else {
                close(file)
                close(directory)
                return nil
            }
        } catch {
            close(file)
            close(directory)
            throw error
        }
        let bytes = Array("\(note) \(getpid())\n".utf8)
        _ = ftruncate(file, 0)
        _ = pwrite(file, bytes, bytes.count, 0)
        return ConsumerLock(directory: directory, file: file)
    }

    /// Like `tryAcquire`, but waits up to `timeout` for another holder to let go (or for a
    /// `forward status` that is looking at the lock to finish), without blocking a thread.
    public static func acquire(_ layout: ForwardLayout, note: String = "forward", waitingUpTo timeout: Duration)
        async throws -> ConsumerLock?
    {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let lock = try tryAcquire(layout, note: note) { return lock }
            if ContinuousClock.now >= deadline { return nil }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Whether a consumer holds the queue, and its pid when that can be told.
    public struct Holder: Sendable, Equatable {
        public var running: Bool
        public var pid: Int32?
    }

    /// Looks without taking anything a consumer could want: a shared lock, dropped at once,
    /// succeeds only while nobody holds the exclusive one.
    public static func holder(_ layout: ForwardLayout) -> Holder {
        let directory = open(layout.queue, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else { return Holder(running: false, pid: nil) }
        defer { close(directory) }
        var result: Int32
        repeat { result = flock(directory, LOCK_SH | LOCK_NB) } while result != 0 && errno == EINTR
        if result == 0 {
            flock(directory, LOCK_UN)
            return Holder(running: false, pid: nil)
        }
        guard errno == EWOULDBLOCK else { return Holder(running: false, pid: nil) }
        return Holder(running: true, pid: writtenPID(layout) ?? lockingPID(of: directory))
    }

    /// The pid the holder wrote into `.forward.lock`, if the file is still there.
    static func writtenPID(_ layout: ForwardLayout) -> Int32? {
        guard let text = try? String(contentsOfFile: layout.lock, encoding: .utf8) else { return nil }
        return text.split(whereSeparator: \.isWhitespace).last.flatMap { Int32($0) }
    }

    /// The pid `/proc/locks` gives for the FLOCK on the directory's inode, where it can be read.
    static func lockingPID(of directory: Int32) -> Int32? {
        var info = stat()
        guard fstat(directory, &info) == 0, let text = readWhole("/proc/locks") else { return nil }
        let dev = UInt64(info.st_dev)
        let major = (dev >> 8) & 0xfff | (dev >> 32) & ~UInt64(0xfff)
        let minor = dev & 0xff | (dev >> 12) & ~UInt64(0xff)
        func hex(_ value: UInt64) -> String {
            let text = String(value, radix: 16)
            return text.count < 2 ? "0" + text : text
        }
        // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF": major and minor in hex, then the inode.
        let device = "\(hex(major)):\(hex(minor)):\(info.st_ino)"
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ")
            guard words.count >= 6, words[1] == "FLOCK", words[3] == "WRITE", words[5] == device else { continue }
            return Int32(words[4])
        }
        return nil
    }

    /// A procfs file read to its end with read(2): it reports a size of 0, and a reader that
    /// trusts the size (or stops after a page) misses the lines past the first 4 KiB, which is
    /// where the FLOCK line is when many other locks are held.
    static func readWhole(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func lock(_ fd: Int32, _ operation: Int32, path: String) throws -> Bool {
        while flock(fd, operation | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            if code == EWOULDBLOCK { return false }
            throw ForwardError("cannot lock \(path): \(String(cString: strerror(code)))")
        }
        return true
    }

    private static func errorText() -> String { String(cString: strerror(errno)) }

    deinit {
        flock(file, LOCK_UN)
        close(file)
        flock(directory, LOCK_UN)
        close(directory)
    }
}
