//go:build !viewer

package main

import "errors"

// runWindow needs the viewer build tag (GLFW, X11 headers).
func runWindow(config) error {
	return errors.New("this binary was built without the window (build with -tags viewer; needs libx11-dev libxrandr-dev libxinerama-dev libxcursor-dev libxi-dev libxxf86vm-dev libgl-dev); --image FILE.png renders a frame without one")
}
