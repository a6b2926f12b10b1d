package main

import (
	"fmt"
	"image"
	"image/color"
	"math"

	"github.com/shareprefill/shareprefill/share"
)

// Colours. Each method has its own; the screenshot test checks them.
var (
	colBackground = color.RGBA{16, 16, 22, 255}
	colUpper      = color.RGBA{26, 26, 34, 255} // non-causal blocks
	colSkipped    = color.RGBA{58, 58, 70, 255} // causal blocks not computed
	colText       = color.RGBA{230, 230, 230, 255}
	colDim        = color.RGBA{150, 150, 160, 255}
	colHighlight  = color.RGBA{255, 255, 255, 255}
)

var methodColours = map[share.Method]color.RGBA{
	share.MethodPivot:         {235, 64, 52, 255},   // red
	share.MethodShared:        {60, 200, 90, 255},   // green
	share.MethodVerticalSlash: {66, 135, 245, 255},  // blue
	share.MethodQueryAware:    {245, 190, 40, 255},  // amber
	share.MethodDense:         {205, 205, 205, 255}, // light grey
	share.MethodExcluded:      {170, 90, 220, 255},  // purple
}

// methodColour is the colour of m (magenta for an unknown method).
func methodColour(m share.Method) color.RGBA {
	if c, ok := methodColours[m]; ok {
		return c
	}
	return color.RGBA{255, 0, 255, 255}
}

const textScale = 2

// layout places everything on a W×H frame for data with L layers and H
// heads: an overview grid (layers × heads, one square per head in its
// method's colour) on the left, the nb×nb block maps of the current
// layer's heads on the right, the generated text below.
type layout struct {
	W, H     int
	Overview [][]image.Rectangle // [layer][head]
	Maps     []image.Rectangle   // [head]: the square nb×nb map
	Labels   []image.Point       // [head]: label position under the map
	Text     image.Rectangle
}

func makeLayout(w, h int, v *viewData) layout {
	lo := layout{W: w, H: h}
	L := len(v.Layers)
	heads := 0
	for _, l := range v.Layers {
		heads = max(heads, len(l.Heads))
	}
	if L == 0 || heads == 0 {
		return lo
	}
	top := 2*lineH(textScale) + 16 // title and legend lines
	textH := 6*lineH(textScale) + 12
	lo.Text = image.Rect(8, h-textH, w-8, h-4)
	bottom := lo.Text.Min.Y - 8

	// Overview: squares of side s with a 2-pixel gap.
	ovW := min(300, w/4)
	s := min((ovW-8)/heads-2, (bottom-top-lineH(textScale))/L-2, 24)
	s = max(s, 2)
	x0, y0 := 8, top+lineH(textScale)
	lo.Overview = make([][]image.Rectangle, L)
	for l := range L {
		lo.Overview[l] = make([]image.Rectangle, len(v.Layers[l].Heads))
		for hh := range v.Layers[l].Heads {
			x, y := x0+hh*(s+2), y0+l*(s+2)
			lo.Overview[l][hh] = image.Rect(x, y, x+s, y+s)
		}
	}

	// Maps: cols × rows cells, each a square map plus one label line.
	mx0 := ovW + 16
	aw, ah := w-8-mx0, bottom-top
	cols := int(math.Ceil(math.Sqrt(2 * float64(heads))))
	cols = min(max(cols, 1), heads)
	rows := (heads + cols - 1) / cols
	cw, ch := aw/cols, ah/rows
	side := min(cw-12, ch-lineH(textScale)-10)
	side = max(side, 4)
	if v.NB > 0 && side >= v.NB {
		side -= side % v.NB // whole pixels per block
	}
	for hh := range heads {
		c, r := hh%cols, hh/cols
		x, y := mx0+c*cw, top+r*ch
		lo.Maps = append(lo.Maps, image.Rect(x, y, x+side, y+side))
		lo.Labels = append(lo.Labels, image.Pt(x, y+side+4))
	}
	return lo
}

// blockRect is the pixel rectangle of block (r, c) of an nb×nb map drawn in
// m.
func blockRect(m image.Rectangle, nb, r, c int) image.Rectangle {
	side := m.Dx()
	return image.Rect(m.Min.X+c*side/nb, m.Min.Y+r*side/nb, m.Min.X+(c+1)*side/nb, m.Min.Y+(r+1)*side/nb)
}

func fillRect(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Rect)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		row := img.Pix[img.PixOffset(r.Min.X, y):img.PixOffset(r.Max.X, y)]
		for i := 0; i < len(row); i += 4 {
			row[i], row[i+1], row[i+2], row[i+3] = c.R, c.G, c.B, c.A
		}
	}
}

func outline(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	fillRect(img, image.Rect(r.Min.X, r.Min.Y, r.Max.X, r.Min.Y+1), c)
	fillRect(img, image.Rect(r.Min.X, r.Max.Y-1, r.Max.X, r.Max.Y), c)
	fillRect(img, image.Rect(r.Min.X, r.Min.Y, r.Min.X+1, r.Max.Y), c)
	fillRect(img, image.Rect(r.Max.X-1, r.Min.Y, r.Max.X, r.Max.Y), c)
}

// legendOrder lists the methods in the legend.
var legendOrder = []share.Method{share.MethodPivot, share.MethodShared, share.MethodVerticalSlash,
	share.MethodQueryAware, share.MethodExcluded, share.MethodDense}

// drawFrame renders layer cur of v into img (its bounds are the frame).
func drawFrame(img *image.RGBA, v *viewData, cur int) layout {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	fillRect(img, img.Rect, colBackground)
	lo := makeLayout(w, h, v)
	if len(v.Layers) == 0 {
		drawText(img, 8, 8, textScale, colText, "no layers to show")
		return lo
	}
	cur = min(max(cur, 0), len(v.Layers)-1)
	lv := v.Layers[cur]

	title := fmt.Sprintf("%s  %s  n=%d  %d-token blocks  layer %d/%d  density %.3f",
		v.Model, v.Planner, v.N, v.BlockSize, lv.Layer, len(v.Layers)-1, lv.MeanDensity)
	drawText(img, 8, 6, textScale, colText, title)
	x := 8
	ly := 6 + lineH(textScale) + 4
	for _, m := range legendOrder {
		s := lineH(textScale) - 4
		fillRect(img, image.Rect(x, ly, x+s, ly+s), methodColour(m))
		x = drawText(img, x+s+4, ly, textScale, colDim, m.String()) + 14
	}
	drawText(img, x, ly, textScale, colDim, "<-/-> j/k: layer  q: quit")

	// Overview.
	if len(lo.Overview) > 0 && len(lo.Overview[0]) > 0 {
		o := lo.Overview[0][0]
		drawText(img, o.Min.X, o.Min.Y-lineH(textScale), textScale, colDim, "layers x heads")
	}
	for l, row := range lo.Overview {
		for hh, r := range row {
			fillRect(img, r, methodColour(v.Layers[l].Heads[hh].Method))
		}
		if l == cur && len(row) > 0 {
			outline(img, image.Rect(row[0].Min.X-2, row[0].Min.Y-2, row[len(row)-1].Max.X+2, row[0].Max.Y+2), colHighlight)
		}
	}

	// Block maps of the current layer.
	for hh, hv := range lv.Heads {
		if hh >= len(lo.Maps) {
			break
		}
		drawMap(img, lo.Maps[hh], v.NB, hv)
		label := fmt.Sprintf("h%d %s %.2f", hh, shortMethod(hv.Method), hv.Density)
		if hv.Cluster != "" {
			label += " c" + hv.Cluster
		}
		drawText(img, lo.Labels[hh].X, lo.Labels[hh].Y, textScale, colText, label)
	}

	// Generated text.
	cols := lo.Text.Dx() / charW(textScale)
	lines := wrap(v.Text, cols)
	maxLines := lo.Text.Dy() / lineH(textScale)
	if len(lines) > maxLines {
		lines = lines[:maxLines]
	}
	for i, s := range lines {
		drawText(img, lo.Text.Min.X, lo.Text.Min.Y+i*lineH(textScale), textScale, colText, s)
	}
	return lo
}

// drawMap draws one head's nb×nb map: computed blocks in the method's
// colour, skipped causal blocks dark, the non-causal triangle darker. With
// no mask (statistics only) every causal block takes the method's colour.
func drawMap(img *image.RGBA, m image.Rectangle, nb int, hv headView) {
	fillRect(img, m, colUpper)
	if nb <= 0 {
		fillRect(img, m, methodColour(hv.Method))
		return
	}
	mc := methodColour(hv.Method)
	for r := 0; r < nb; r++ {
		for c := 0; c <= r; c++ {
			col := mc
			if hv.Mask != nil && !hv.Mask[r*nb+c] {
				col = colSkipped
			}
			fillRect(img, blockRect(m, nb, r, c), col)
		}
	}
}

func shortMethod(m share.Method) string {
	switch m {
	case share.MethodVerticalSlash:
		return "vs"
	case share.MethodQueryAware:
		return "query"
	}
	return m.String()
}

// expectedColour is the colour the frame must show at the centre of block
// (r, c) of head hv (for tests).
func expectedColour(hv headView, nb, r, c int) color.RGBA {
	switch {
	case c > r:
		return colUpper
	case hv.Mask != nil && !hv.Mask[r*nb+c]:
		return colSkipped
	}
	return methodColour(hv.Method)
}
