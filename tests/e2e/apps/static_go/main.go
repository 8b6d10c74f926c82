// A static Go program for tests/e2e/apps/test_app_static_go.py, built there
// with CGO_ENABLED=0: 16 goroutines, each locked to a thread of its own (so
// the Go runtime makes 16 threads with its raw clone and sets FS per thread
// with arch_prctl, and ends each when its goroutine returns locked), write,
// read back and check a protected file each.
//
//	static_go DIR        prints "threads: N" (distinct thread ids) and "files: N"
//	static_go DIR list   also lists DIR: "listed: N FIRST LAST"
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
)

func main() {
	dir := os.Args[1]
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	tids := make(chan int, 64)
	var started sync.WaitGroup
	started.Add(16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// A thread of its own, ended by the Go runtime when the
			// goroutine returns locked (its exitThread).
			runtime.LockOSThread()
			tids <- syscall.Gettid()
			started.Done()
			started.Wait()
			p := filepath.Join(dir, fmt.Sprintf("g%02d.txt", i))
			want := strings.Repeat(fmt.Sprintf("goroutine %d ", i), 100)
			for r := 0; r < 5; r++ {
				if err := os.WriteFile(p, []byte(want), 0600); err != nil {
					errs <- err
					return
				}
				got, err := os.ReadFile(p)
				if err != nil || string(got) != want {
					errs <- fmt.Errorf("read back %s: %v", p, err)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	close(tids)
	seen := map[int]bool{}
	for t := range tids {
		seen[t] = true
	}
	for err := range errs {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("threads:", len(seen))
	fmt.Println("files:", 16)
	if len(os.Args) < 3 || os.Args[2] != "list" {
		return
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		fmt.Println("readdir:", err)
		os.Exit(1)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	fmt.Println("listed:", len(names), names[0], names[len(names)-1])
}
