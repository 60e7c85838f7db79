package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strings"
	"unicode"
)

// writePlot draws one panel per phase (columns: NUM_PARALLEL; rows: strategies): /healthz
// latency and chat time-to-first-token over time on a log scale, ingest progress (share of
// documents done) as a line on a linear right-hand scale. Drawn with image/png and a built-in
// 5×7 font, so the bench needs no plotting module.
func writePlot(r *report, path string) error {
	var rows []string
	for _, p := range r.Phases {
		if !contains(rows, p.Strategy) {
			rows = append(rows, p.Strategy)
		}
	}
	cols := r.Settings.NumParallel
	const panelW, panelH, header = 700, 280, 78
	W, H := panelW*max(1, len(cols)), header+panelH*max(1, len(rows))
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	fill(img, img.Bounds(), white)

	text(img, 12, 10, 2, black, "BULK INGEST: /HEALTHZ LATENCY AND CHAT TTFT OVER TIME, WITH INGEST PROGRESS")
	text(img, 12, 32, 1, gray, fmt.Sprintf("%d DOCS, %d CHUNKS. %d CPUS (%s), %s, %s", r.Corpus.Docs, r.Corpus.Chunks, r.Machine.CPUs,
		r.Machine.CPUModel, r.Machine.GoVersion, strings.ToUpper(r.Machine.Date)))
	lx := 12
	legend := func(c color.RGBA, label string, kind int) {
		switch kind {
		case 0:
			fill(img, image.Rect(lx, 52, lx+3, 55), c)
		case 1:
			fill(img, image.Rect(lx, 49, lx+6, 56), c)
		case 2:
			fill(img, image.Rect(lx, 52, lx+14, 54), c)
		case 3:
			dashedH(img, lx, lx+14, 53, c)
		}
		text(img, lx+20, 50, 1, black, label)
		lx += 28 + 6*len(label)
	}
	legend(blue, "HEALTH PROBE (EVERY 100 MS)", 0)
	legend(red, "FAILED PROBE", 0)
	legend(orange, "CHAT TTFT DURING INGEST", 1)
	legend(green, "CHAT TTFT IDLE", 1)
	legend(black, "DOCUMENTS DONE (RIGHT AXIS)", 2)
	legend(purple, "ENRICHED", 2)
	legend(teal, "20 MS GOAL", 3)
	legend(red, "GUIDE 2 S", 3)

	for ci, np := range cols {
		for ri, strat := range rows {
			p := r.phase(np, strat)
			rect := image.Rect(ci*panelW, header+ri*panelH, (ci+1)*panelW, header+(ri+1)*panelH)
			if p == nil {
				continue
			}
			drawPanel(img, rect, p)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

var (
	white  = color.RGBA{255, 255, 255, 255}
	black  = color.RGBA{20, 20, 20, 255}
	gray   = color.RGBA{110, 110, 110, 255}
	light  = color.RGBA{225, 225, 225, 255}
	blue   = color.RGBA{60, 110, 190, 255}
	red    = color.RGBA{210, 40, 40, 255}
	orange = color.RGBA{240, 140, 20, 255}
	green  = color.RGBA{40, 160, 60, 255}
	purple = color.RGBA{140, 60, 170, 255}
	teal   = color.RGBA{0, 150, 140, 255}
)

const (
	logMin = -1.0 // 0.1 ms
	logMax = 5.0  // 100 s
)

func drawPanel(img *image.RGBA, rect image.Rectangle, p *phaseResult) {
	plot := image.Rect(rect.Min.X+70, rect.Min.Y+30, rect.Max.X-48, rect.Max.Y-30)
	title := fmt.Sprintf("NUM_PARALLEL %d: %s", p.NumParallel, strings.ToUpper(p.Strategy))
	text(img, rect.Min.X+12, rect.Min.Y+8, 2, black, title)
	sub := fmt.Sprintf("%.1f DOCS/MIN, HEALTH P99 %s, TTFT P95 %s", p.DocsPerMin, strings.ToUpper(fmtMs(p.Health.P99)), strings.ToUpper(fmtMs(p.ChatIngest.P95)))
	text(img, rect.Max.X-12-6*len(sub), rect.Min.Y+12, 1, gray, sub)

	xmax := p.Timeline.IngestEnd
	for _, s := range p.Timeline.Chat {
		xmax = math.Max(xmax, s.T+s.Ms/1000)
	}
	for _, s := range p.Timeline.Health {
		xmax = math.Max(xmax, s.T)
	}
	xmax = niceCeil(math.Max(xmax, 1) * 1.02)
	X := func(t float64) int { return plot.Min.X + int(t/xmax*float64(plot.Dx())) }
	Y := func(msv float64) int {
		l := math.Log10(math.Max(msv, math.Pow(10, logMin)))
		l = math.Min(l, logMax)
		return plot.Max.Y - int((l-logMin)/(logMax-logMin)*float64(plot.Dy()))
	}
	P := func(frac float64) int { return plot.Max.Y - int(frac*float64(plot.Dy())) }

	// Grid and axes.
	for d := logMin; d <= logMax; d++ {
		y := Y(math.Pow(10, d))
		hline(img, plot.Min.X, plot.Max.X, y, light)
		label := map[float64]string{-1: "0.1 MS", 0: "1 MS", 1: "10 MS", 2: "100 MS", 3: "1 S", 4: "10 S", 5: "100 S"}[d]
		text(img, plot.Min.X-8-6*len(label), y-3, 1, gray, label)
	}
	step := niceStep(xmax / 6)
	for t := 0.0; t <= xmax+1e-9; t += step {
		x := X(t)
		vline(img, x, plot.Min.Y, plot.Max.Y, light)
		label := fmt.Sprintf("%g S", t)
		text(img, x-3*len(label), plot.Max.Y+6, 1, gray, label)
	}
	for _, f := range []float64{0, 0.5, 1} {
		label := fmt.Sprintf("%.0f%%", f*100)
		text(img, plot.Max.X+6, P(f)-3, 1, gray, label)
	}
	rectOutline(img, plot, gray)
	dashedH(img, plot.Min.X, plot.Max.X, Y(20), teal)
	dashedH(img, plot.Min.X, plot.Max.X, Y(2000), red)
	dashedV(img, X(p.Timeline.IngestEnd), plot.Min.Y, plot.Max.Y, gray)
	text(img, X(p.Timeline.IngestEnd)+4, plot.Min.Y+4, 1, gray, "INGEST DONE")

	for _, s := range p.Timeline.Health {
		x, y := X(s.T), Y(s.Ms)
		c := blue
		if s.Err != "" {
			c = red
		}
		fill(img, image.Rect(x-1, y-1, x+1, y+1), c)
	}
	if p.Docs > 0 {
		lastX, lastY, lastE := -1, -1, -1
		for _, s := range p.Timeline.Progress {
			x := X(s.T)
			y := P(float64(s.Done+s.Failed) / float64(p.Docs))
			if lastX >= 0 {
				line(img, lastX, lastY, x, y, black)
				line(img, lastX, lastY+1, x, y+1, black)
			}
			lastX, lastY = x, y
			if enriching(p.Strategy) {
				e := P(float64(s.Enriched) / float64(p.Docs))
				if lastE >= 0 {
					line(img, x-1, lastE, x, e, purple)
				}
				lastE = e
			}
		}
	}
	for _, s := range p.Timeline.Chat {
		x, y := X(s.T), Y(s.Ms)
		c := orange
		if s.Phase == "idle" {
			c = green
		}
		if s.Err != "" {
			c = red
		}
		fill(img, image.Rect(x-3, y-3, x+3, y+3), c)
	}
}

func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= raw {
			return m * e
		}
	}
	return 10 * e
}

func niceCeil(v float64) float64 {
	s := niceStep(v / 6)
	return math.Ceil(v/s) * s
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) { fill(img, image.Rect(x0, y, x1+1, y+1), c) }
func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) { fill(img, image.Rect(x, y0, x+1, y1+1), c) }

func dashedH(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	for x := x0; x <= x1; x += 8 {
		hline(img, x, min(x+4, x1), y, c)
	}
}

func dashedV(img *image.RGBA, x, y0, y1 int, c color.RGBA) {
	for y := y0; y <= y1; y += 8 {
		vline(img, x, y, min(y+4, y1), c)
	}
}

func rectOutline(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	hline(img, r.Min.X, r.Max.X, r.Min.Y, c)
	hline(img, r.Min.X, r.Max.X, r.Max.Y, c)
	vline(img, r.Min.X, r.Min.Y, r.Max.Y, c)
	vline(img, r.Max.X, r.Min.Y, r.Max.Y, c)
}

// line draws with Bresenham's algorithm.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		if (image.Point{x0, y0}).In(img.Bounds()) {
			img.SetRGBA(x0, y0, c)
		}
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}

// text draws s with the 5×7 font at the given pixel scale; unknown runes become '?'.
func text(img *image.RGBA, x, y, scale int, c color.RGBA, s string) {
	for _, r := range s {
		if r != 'x' {
			r = unicode.ToUpper(r)
		}
		switch r {
		case '×':
			r = 'x'
		case '–', '—':
			r = '-'
		}
		g, ok := glyphs[r]
		if !ok {
			g = glyphs['?']
		}
		for row := range 7 {
			for col := range 5 {
				if g[row]&(1<<(4-col)) != 0 {
					fill(img, image.Rect(x+col*scale, y+row*scale, x+(col+1)*scale, y+(row+1)*scale), c)
				}
			}
		}
		x += 6 * scale
	}
}
