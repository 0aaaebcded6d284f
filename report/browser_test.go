package report

import (
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBrowser renders the HTML report of testdata/sweep.csv in headless
// Chromium, takes a screenshot and checks that the plots were drawn: the
// palette's colours of the bars, points and loadings must cover a fair
// part of the page, which an SVG the browser could not render would not.
//
// Chromium comes from scripts/chromium-install.sh (Debian's chromium). The
// test fails under CI=true when it is missing and skips otherwise. Set
// AGORA_SCREENSHOT=FILE.png to keep the screenshot for a look.
func TestBrowser(t *testing.T) {
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed: run scripts/chromium-install.sh")
		}
		t.Skip("chromium is not installed (scripts/chromium-install.sh installs it)")
	}
	dir := t.TempDir()
	if err := WriteHTML(dir, sweep(t)); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const width, height = 1200, 7800
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--window-size=1200,7800",
		"--screenshot="+shot, "file://"+filepath.Join(dir, "index.html"))
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if keep := os.Getenv("AGORA_SCREENSHOT"); keep != "" {
		b, _ := os.ReadFile(shot)
		if err := os.WriteFile(keep, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if b := img.Bounds(); b.Dx() != width || b.Dy() != height {
		t.Fatalf("screenshot is %v, want %dx%d", b, width, height)
	}
	// Count pixels of each palette colour (exact: fills are flat).
	counts := make([]int, len(palette))
	white := 0
	each(img, func(c color.RGBA) {
		if c.R == 0xff && c.G == 0xff && c.B == 0xff {
			white++
			return
		}
		for i, p := range palette {
			if near(c, p) {
				counts[i]++
			}
		}
	})
	total := width * height
	for i := 0; i < 5; i++ { // five generators
		if counts[i] < total/2000 {
			t.Errorf("colour %s covers %d pixels: its plots were not drawn (counts %v)", hexColor(palette[i]), counts[i], counts)
		}
	}
	if white == total || white < total/2 {
		t.Errorf("%d of %d pixels white: the page is blank or not the report", white, total)
	}
	// The page is as tall as the window: the last section is in view.
	var buf strings.Builder
	dump := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu",
		"--user-data-dir="+filepath.Join(dir, "profile2"), "--dump-dom", "file://"+filepath.Join(dir, "index.html"))
	dump.Env = cmd.Env
	dump.Stdout = &buf
	if err := dump.Run(); err != nil {
		t.Fatalf("dump-dom: %v", err)
	}
	if n := strings.Count(buf.String(), "<svg"); n != 11 {
		t.Errorf("the browser's DOM has %d svg elements, want 11", n)
	}
}

func each(img image.Image, fn func(color.RGBA)) {
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			fn(color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), 0xff})
		}
	}
}

func near(a, b color.RGBA) bool {
	d := func(x, y uint8) int {
		if x > y {
			return int(x - y)
		}
		return int(y - x)
	}
	return d(a.R, b.R) <= 3 && d(a.G, b.G) <= 3 && d(a.B, b.B) <= 3
}
