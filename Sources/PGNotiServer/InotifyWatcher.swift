import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// inotify on one directory: which files were renamed into it, and a wake-up when anything was
/// written or moved. nil where inotify is unavailable; the inbox then only polls.
final class InotifyWatcher: Sendable {
    private struct State {
        var renamed: [String] = []
        var pending = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        var closed = false
    }

    private let fd: Int32
    private let state = Mutex(State())

    init?(directory: String, logger: Logger) {
        let fd = inotify_init1(Int32(IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        let mask = UInt32(IN_MOVED_TO) | UInt32(IN_CLOSE_WRITE) | UInt32(IN_CREATE) | UInt32(IN_MODIFY)
        guard inotify_add_watch(fd, directory, mask) >= 0 else {
            logger.warning("inotify unavailable for the Toss inbox; polling it", metadata: ["inbox": "\(directory)"])
            Glibc.close(fd)
            return nil
        }
        self.fd = fd
        Thread.detachNewThread { [self] in readLoop() }
    }

    /// Blocks in read(2) on its own thread, never on the cooperative pool.
    private func readLoop() {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 {
                if n < 0 && errno == EINTR { continue }
                return
            }
            let names = Self.renamedIn(buffer[..<n])
            let toResume: [CheckedContinuation<Void, Never>] = state.withLock { state in
                state.renamed += names
                state.pending = true
                defer { state.waiters.removeAll() }
                return state.waiters
            }
            for waiter in toResume { waiter.resume() }
        }
    }

    /// The names of the `IN_MOVED_TO` events in a buffer of `struct inotify_event`s. Pure.
    static func renamedIn(_ buffer: ArraySlice<UInt8>) -> [String] {
        var names: [String] = []
        var offset = buffer.startIndex
        while offset + 16 <= buffer.endIndex {
            func word(_ at: Int) -> UInt32 {
                UInt32(buffer[at]) | UInt32(buffer[at + 1]) << 8 | UInt32(buffer[at + 2]) << 16
                    | UInt32(buffer[at + 3]) << 24
            }
            let mask = word(offset + 4)
            let length = Int(word(offset + 12))
            let nameBytes = buffer[(offset + 16)..<min(buffer.endIndex, offset + 16 + length)].prefix { $0 != 0 }
            if mask & UInt32(IN_MOVED_TO) != 0 { names.append(String(decoding: nameBytes, as: UTF8.self)) }
            offset += 16 + length
        }
        return names
    }

    func drainRenamedIn() -> [String] {
        state.withLock { state in
            defer {
                state.renamed.removeAll()
                state.pending = false
            }
            return state.renamed
        }
    }

    /// Returns on the next inotify event, or after `timeout`.
    func wait(upTo timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow: Bool = self.state.withLock { state in
                        if state.pending || state.closed { return true }
                        state.waiters.append(continuation)
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
            // The continuation task may still be parked: wake every waiter so it can finish.
            let waiting: [CheckedContinuation<Void, Never>] = self.state.withLock { state in
                defer { state.waiters.removeAll() }
                return state.waiters
            }
            for waiter in waiting { waiter.resume() }
        }
    }

    func close() {
        state.withLock { $0.closed = true }
        Glibc.close(fd)
    }
}
