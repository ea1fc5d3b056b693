package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/internal/badgerkv"
	"osim/internal/clock"
)

// blobDir holds staged blobs (sha256/<sha>) and downloads in progress
// (partial/<sha>); staging writes it, the seams serve from it.
type blobDir string

func (d blobDir) path(sha string) string    { return filepath.Join(string(d), "sha256", sha) }
func (d blobDir) partial(sha string) string { return filepath.Join(string(d), "partial", sha) }

// stager downloads the blobs the live orders of the view need and
// queues their order.staged events; it also collects unreferenced blobs.
type stager struct {
	db      *badger.DB
	client  *api.Client
	retries int // tries per blob per pass
	blobs   blobDir
	view    *localView
	q       *eventQueue
	space   guard
	backoff func() *backoff
	clock   clock.Clock
	m       *agentMetrics
	log     *slog.Logger
}

// staged reports whether the blob of f is stored completely.
func (s *stager) staged(f api.ImageFile) bool {
	st, err := os.Stat(s.blobs.path(f.SHA256))
	return err == nil && st.Mode().IsRegular() && st.Size() == f.Size
}

// run stages live orders whenever the view changes, retrying
// failures with backoff, and collects unreferenced blobs.
func (s *stager) run(ctx context.Context) {
	bo := s.backoff()
	failed := map[string]string{} // order/attempt → last reason reported
	var gcSeq uint64
	for ctx.Err() == nil {
		seq := s.view.seq.Load()
		retry := s.stagePass(ctx, failed)
		if seq != gcSeq {
			if err := s.collectBlobs(); err != nil {
				s.log.Warn("blob GC", "err", err)
			} else {
				gcSeq = seq
			}
		}
		var timer clock.Timer
		var fire <-chan time.Time
		if retry {
			timer, fire = s.clock.NewTimer(bo.next())
		} else {
			bo.reset()
		}
		select {
		case <-ctx.Done():
		case <-s.view.changed:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// stagePass downloads what live orders need and queues order.staged for
// each pending order whose blobs are all here; true when something failed.
func (s *stager) stagePass(ctx context.Context, failed map[string]string) (retry bool) {
	// Orders share images: a mass reimage is thousands of orders over one
	// or two images. Work per distinct (image, boot image) pair, and keep
	// per order only what the events need.
	type imagePair [2]string
	type orderRef struct {
		id, target string
		attempt    int
		pending    bool
		pair       imagePair
	}
	var refs []orderRef
	pairFiles := map[imagePair][]api.ImageFile{}
	pairErr := map[imagePair]error{}
	s.view.mu.RLock()
	for _, o := range s.view.v.orders {
		// Orders past pending need their blobs here too (this boot server
		// may have joined late or lost its disk); only pending ones get
		// order.staged.
		p := imagePair{o.Image, o.BootImage}
		refs = append(refs, orderRef{id: o.ID, target: o.Target, attempt: o.Attempt, pending: o.State == api.OrderPending, pair: p})
		if _, seen := pairFiles[p]; seen || pairErr[p] != nil {
			continue
		}
		var files []api.ImageFile
		for _, id := range p {
			if id == "" {
				continue
			}
			img, ok := s.view.v.images[id]
			if !ok {
				pairErr[p] = fmt.Errorf("image %q is not in this boot server's view", id)
				break
			}
			files = append(files, img.Files...)
		}
		if pairErr[p] == nil {
			pairFiles[p] = files
		}
	}
	// The discovery image is staged always: unknown machines boot it.
	discoveryPair := imagePair{"", s.view.cfg.DiscoveryImage}
	if img, ok := s.view.v.images[discoveryPair[1]]; ok && discoveryPair[1] != "" {
		pairFiles[discoveryPair] = img.Files
	}
	s.view.mu.RUnlock()
	slices.SortFunc(refs, func(x, y orderRef) int { return strings.Compare(x.id, y.id) })

	blobErr := map[string]error{} // one try per blob per pass
	for p, files := range pairFiles {
		for _, f := range files {
			if ctx.Err() != nil {
				return false
			}
			e, tried := blobErr[f.SHA256]
			if !tried {
				if !s.staged(f) {
					e = s.fetchBlob(ctx, f)
				}
				blobErr[f.SHA256] = e
			}
			if e != nil {
				pairErr[p] = fmt.Errorf("file %s: %w", f.Name, e)
				break
			}
		}
	}
	if ctx.Err() != nil {
		return false
	}

	if err := pairErr[discoveryPair]; err != nil && discoveryPair[1] != "" {
		retry = true
		s.log.Warn("staging the discovery image failed", "image", discoveryPair[1], "err", err)
	}
	var ready []orderRef // pending orders whose blobs are all here
	for _, o := range refs {
		key := o.id + "/" + strconv.Itoa(o.attempt)
		if err := pairErr[o.pair]; err != nil {
			retry = true
			reason := err.Error()
			s.log.Warn("staging failed", "order", o.id, "attempt", o.attempt, "err", reason)
			if o.pending && failed[key] != reason {
				ev := api.Event{Type: api.EventStageFailed, Order: o.id, Target: o.target, Message: reason,
					Data: map[string]string{"attempt": strconv.Itoa(o.attempt)}}
				if e := s.q.Emit(ev); e == nil {
					failed[key] = reason
				}
			}
			continue
		}
		delete(failed, key)
		if o.pending {
			ready = append(ready, o)
		}
	}
	// A mass reimage stages thousands of orders at once: queue their
	// events in transactions of stageBatch, not one each.
	for len(ready) > 0 && ctx.Err() == nil {
		n := min(len(ready), stageBatch)
		batch := make([]stageRef, n)
		for i, o := range ready[:n] {
			batch[i] = stageRef{order: o.id, target: o.target, attempt: o.attempt}
		}
		if err := s.markStaged(batch); err != nil {
			s.log.Error("queueing order.staged", "orders", n, "err", err)
			retry = true
		}
		ready = ready[n:]
	}
	return retry
}

// stageRef is an order that is ready: its blobs are all staged.
type stageRef struct {
	order, target string
	attempt       int
}

// stageBatch is how many order.staged events one transaction queues.
const stageBatch = 500

// markStaged queues order.staged once per order and attempt: the markers
// and the events are one transaction. Only the stage loop calls it, so
// the check before the write stays true.
func (s *stager) markStaged(orders []stageRef) error {
	var todo []stageRef
	err := s.db.View(func(txn *badger.Txn) error {
		for _, o := range orders {
			_, err := txn.Get(stagedKey(o.order, o.attempt))
			switch {
			case errors.Is(err, badger.ErrKeyNotFound):
				todo = append(todo, o)
			case err != nil:
				return err
			}
		}
		return nil
	})
	if err != nil || len(todo) == 0 {
		return err
	}
	evs := make([]api.Event, len(todo))
	for i, o := range todo {
		evs[i] = api.Event{Type: api.EventOrderStaged, Order: o.order, Target: o.target,
			Data: map[string]string{"attempt": strconv.Itoa(o.attempt)}}
	}
	err = s.q.emitWith(func(txn *badger.Txn) error {
		for _, o := range todo {
			if err := txn.Set(stagedKey(o.order, o.attempt), nil); err != nil {
				return err
			}
		}
		return nil
	}, evs...)
	if err != nil {
		return err
	}
	if len(todo) == 1 {
		s.log.Info("order staged", "order", todo[0].order, "attempt", todo[0].attempt)
	} else {
		s.log.Info("orders staged", "count", len(todo), "first", todo[0].order)
	}
	return nil
}

// fetchBlob downloads f, trying StageRetries times with backoff.
func (s *stager) fetchBlob(ctx context.Context, f api.ImageFile) error {
	if !api.ValidSHA256(f.SHA256) || f.Size < 0 {
		return fmt.Errorf("blob %q of %d bytes: not a valid sha256 and size", f.SHA256, f.Size)
	}
	bo := s.backoff()
	var err error
	for try := 1; try <= s.retries; try++ {
		if err = s.download(ctx, f); err == nil {
			return nil
		}
		s.m.stageFailures.Inc()
		s.log.Debug("blob download failed", "sha256", f.SHA256, "try", try, "err", err)
		if try == s.retries || !bo.sleep(ctx) {
			break
		}
	}
	return err
}

// download resumes BlobDir/partial/<sha> from its length, verifies size
// and sha256, fsyncs and renames it to BlobDir/sha256/<sha>. A partial
// that does not verify is removed so the next try starts over.
func (s *stager) download(ctx context.Context, f api.ImageFile) error {
	pp := s.blobs.partial(f.SHA256)
	fh, err := os.OpenFile(pp, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("blob %s: %w", f.SHA256, err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return fmt.Errorf("blob %s: %w", f.SHA256, err)
	}
	off := st.Size()
	if off > f.Size {
		if err := fh.Truncate(0); err != nil {
			return fmt.Errorf("blob %s: %w", f.SHA256, err)
		}
		off = 0
	}
	// The rest of the blob must fit before its first byte is fetched.
	if err := s.space.room(f.Size - off); err != nil {
		return fmt.Errorf("blob %s: %d of its %d bytes still to stage: %w", f.SHA256, f.Size-off, f.Size, err)
	}
	if _, err := fh.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("blob %s: %w", f.SHA256, err)
	}
	if off < f.Size || f.Size == 0 {
		w := &limitedWriter{w: fh, left: f.Size - off, count: s.m.blobBytes.Add}
		_, err := s.client.DownloadBlob(ctx, f.SHA256, off, w)
		if api.IsStatus(err, http.StatusRequestedRangeNotSatisfiable) {
			_ = os.Remove(pp)
		}
		if err != nil {
			return fmt.Errorf("blob %s from byte %d: %w", f.SHA256, off, err)
		}
	}
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("blob %s: %w", f.SHA256, err)
	}
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil {
		return fmt.Errorf("blob %s: reading back: %w", f.SHA256, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != f.Size || got != f.SHA256 {
		_ = os.Remove(pp)
		return fmt.Errorf("blob %s: got %d bytes hashing to %s, want %d bytes: discarded", f.SHA256, n, got, f.Size)
	}
	if err := fh.Sync(); err != nil {
		return fmt.Errorf("blob %s: fsync: %w", f.SHA256, err)
	}
	if err := os.Rename(pp, s.blobs.path(f.SHA256)); err != nil {
		return fmt.Errorf("blob %s: %w", f.SHA256, err)
	}
	if d, err := os.Open(filepath.Dir(s.blobs.path(f.SHA256))); err == nil {
		_ = d.Sync()
		d.Close()
	}
	s.m.blobsStaged.Inc()
	s.log.Info("blob staged", "sha256", f.SHA256, "size", f.Size)
	return nil
}

// limitedWriter refuses bytes past the blob's announced size.
type limitedWriter struct {
	w     io.Writer
	left  int64
	count func(float64)
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		return 0, fmt.Errorf("more bytes than the blob's size")
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	l.count(float64(n))
	return n, err
}

// collectBlobs removes staged and partial blobs that no image in the view
// references, and the staged markers of orders that left the view. It
// runs on the staging goroutine, so no download is in progress.
func (s *stager) collectBlobs() error {
	keep := map[string]bool{}
	orders := map[string]bool{}
	s.view.mu.RLock()
	for _, img := range s.view.v.images {
		for _, f := range img.Files {
			keep[f.SHA256] = true
		}
	}
	for id := range s.view.v.orders {
		orders[id] = true
	}
	s.view.mu.RUnlock()
	for _, d := range []string{"sha256", "partial"} {
		ents, err := os.ReadDir(filepath.Join(string(s.blobs), d))
		if err != nil {
			return err
		}
		for _, e := range ents {
			if keep[e.Name()] {
				continue
			}
			if err := os.Remove(filepath.Join(string(s.blobs), d, e.Name())); err != nil {
				return err
			}
			s.log.Info("blob collected", "sha256", e.Name(), "dir", d)
		}
	}
	_, err := badgerkv.DeleteKeys(s.db, prefixStaged, func(k []byte) bool {
		rest := string(k[len(prefixStaged):])
		i := strings.LastIndexByte(rest, '/')
		return i > 0 && orders[rest[:i]]
	})
	return err
}
