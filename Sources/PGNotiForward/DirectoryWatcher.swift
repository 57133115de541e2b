import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// inotify on a few directories: the names that arrive in each (created, or renamed in), and
/// a wake-up for whoever waits on them. The forwarder keeps its index of `new/` and `cur/` up
/// to date from these instead of listing the directories.
///
/// nil where inotify is unavailable (or a directory cannot be watched); the caller then falls
/// back to rescanning.
final class DirectoryWatcher: Sendable {
    /// A name that appeared in `directories[directory]`.
    struct Arrival: Sendable, Equatable {
        let directory: Int
        let name: String
    }

    /// What arrived since the last `drain`; `overflowed` when the kernel dropped events, so
    /// only a full rescan can tell what is there; `lost` when a watched directory went away
    /// (removed, or renamed and made anew): this watcher sees no more of it.
    struct Changes: Sendable {
        var arrivals: [Arrival] = []
        var overflowed = false
        var lost = false

        var any: Bool { !arrivals.isEmpty || overflowed || lost }
    }

    private struct State {
        var changes = Changes()
        var waiters: [Waiter] = []
        var closed = false
    }

    private let fd: Int32
    private let descriptors: [Int32]
    private let state = Mutex(State())

    init?(directories: [String]) {
        let fd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard fd >= 0 else { return nil }
        let mask = UInt32(IN_MOVED_TO) | UInt32(IN_CLOSE_WRITE) | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF)
        var descriptors: [Int32] = []
        for directory in directories {
            let wd = inotify_add_watch(fd, directory, mask | UInt32(IN_ONLYDIR))
            guard wd >= 0 else {
                Glibc.close(fd)
                return nil
            }
            descriptors.append(wd)
        }
        self.fd = fd
        self.descriptors = descriptors
        // poll(2) on a thread of its own, never on the cooperative pool; it looks at `closed`
        // at least every 200 ms and closes the descriptor itself on the way out.
        Thread.detachNewThread { [self] in readLoop() }
    }

    private func readLoop() {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while !state.withLock({ $0.closed }) {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 200)
            if ready <= 0 { continue }
            var changes = Changes()
            while true {
                let n = read(fd, &buffer, buffer.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                parse(buffer[0..<n], into: &changes)
            }
            if !changes.any { continue }
            let woken: [Waiter] = state.withLock { state in
                state.changes.arrivals += changes.arrivals
                state.changes.overflowed = state.changes.overflowed || changes.overflowed
                state.changes.lost = state.changes.lost || changes.lost
                defer { state.waiters.removeAll() }
                return state.waiters
            }
            for waiter in woken { waiter.fire() }
        }
        Glibc.close(fd)
    }

    /// `struct inotify_event`: wd, mask, cookie, len (4 bytes each, host order), then the
    /// NUL-padded name.
    private func parse(_ bytes: ArraySlice<UInt8>, into changes: inout Changes) {
        var offset = bytes.startIndex
        func word(_ at: Int) -> UInt32 {
            UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
        }
        while offset + 16 <= bytes.endIndex {
            let wd = Int32(bitPattern: word(offset))
            let mask = word(offset + 4)
            let length = Int(word(offset + 12))
            let end = min(bytes.endIndex, offset + 16 + length)
            if mask & UInt32(IN_Q_OVERFLOW) != 0 {
                changes.overflowed = true
            } else if mask & (UInt32(IN_IGNORED) | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF)) != 0 {
                changes.lost = true
            } else if mask & (UInt32(IN_MOVED_TO) | UInt32(IN_CLOSE_WRITE)) != 0, mask & UInt32(IN_ISDIR) == 0,
                let directory = descriptors.firstIndex(of: wd)
            {
                let name = String(decoding: bytes[(offset + 16)..<end].prefix { $0 != 0 }, as: UTF8.self)
                changes.arrivals.append(Arrival(directory: directory, name: name))
            }
            offset = end
        }
    }

    /// Everything that arrived since the last call.
    func drain() -> Changes {
        state.withLock { state in
            defer { state.changes = Changes() }
            return state.changes
        }
    }

    /// True (once) when a watched directory went away since the last look.
    func drainLost() -> Bool {
        state.withLock { state in
            defer { state.changes.lost = false }
            return state.changes.lost
        }
    }

    /// Returns once something has arrived that `drain` has not taken yet, or after `timeout`.
    func wait(upTo timeout: Duration) async {
        let waiter = Waiter()
        let now: Bool = state.withLock { state in
            if state.closed || state.changes.any { return true }
            state.waiters.append(waiter)
            return false
        }
        if now { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await waiter.wait() }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
            // Whichever came first, the other child must end too.
            waiter.fire()
        }
        state.withLock { state in state.waiters.removeAll { $0 === waiter } }
    }

    /// Stops watching; the reading thread closes the descriptor within 200 ms.
    func close() {
        let woken: [Waiter] = state.withLock { state in
            state.closed = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in woken { waiter.fire() }
    }
}

/// One wait: `fire` resumes it exactly once, whether it comes before or after the wait parks.
final class Waiter: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Void, Never>?
        var fired = false
    }

    private let state = Mutex(State())

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow: Bool = state.withLock { state in
                if state.fired { return true }
                state.continuation = continuation
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    func fire() {
        let continuation: CheckedContinuation<Void, Never>? = state.withLock { state in
            state.fired = true
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume()
    }
}
