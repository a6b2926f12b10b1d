module github.com/shareprefill/shareprefill

go 1.26

require (
	github.com/vulkan-go/glfw v0.0.0-20210402172934-58379a80228d // indirect
	github.com/vulkan-go/vulkan v0.0.0-20221209234627-c0a353ae26c8 // indirect
	github.com/x448/float16 v0.8.4 // indirect
	gonum.org/v1/gonum v0.17.0 // indirect
)
