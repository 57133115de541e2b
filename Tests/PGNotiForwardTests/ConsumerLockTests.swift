import Foundation
import Testing

@testable import PGNotiForward

#if canImport(Glibc)
    import Glibc
#endif

/// One consumer per queue, whatever happens to `.forward.lock`.
@Suite struct ConsumerLockTests {
    @Test func deletingTheLockFileDoesNotLetASecondConsumerIn() throws {
        let layout = try ForwarderTests.makeQueue()
        let first = try #require(try ConsumerLock.tryAcquire(layout))
        #expect(try ConsumerLock.tryAcquire(layout) == nil)
        #expect(ConsumerLock.holder(layout) == ConsumerLock.Holder(running: true, pid: getpid()))

        #expect(unlink(layout.lock) == 0)
        #expect(try ConsumerLock.tryAcquire(layout) == nil, "the queue directory itself is locked")
        let holder = ConsumerLock.holder(layout)
        #expect(holder.running)
        if FileManager.default.isReadableFile(atPath: "/proc/locks") {
            #expect(holder.pid == getpid(), "told by /proc/locks once the file is gone")
        }
        withExtendedLifetime(first) {}
    }

    @Test func theLockDiesWithItsHolder() throws {
        let layout = try ForwarderTests.makeQueue()
        do {
            let lock = try #require(try ConsumerLock.tryAcquire(layout))
            withExtendedLifetime(lock) {}
        }
        #expect(ConsumerLock.holder(layout) == ConsumerLock.Holder(running: false, pid: nil))
        let again = try ConsumerLock.tryAcquire(layout)
        #expect(again != nil)
    }
}
