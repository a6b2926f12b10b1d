// Command oracle compares shareprefill's forward pass with the reference
// logits that bench/peers/hf_oracle.py writes (Hugging Face transformers in
// float32, with transformers' own float16 error as the control): one case
// directory per model and length. It prints the table of
// harness.OracleTables and fails when a case exceeds its tolerance (0.1 for
// random weights, 1e-3 for trained models). The same comparison runs from
// the prebuilt binary as `shareprefill bench accuracy --oracle DIR`.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/shareprefill/shareprefill/bench/harness"
)

func main() {
	dir := flag.String("dir", "", "directory written by hf_oracle.py")
	tolRandom := flag.Float64("tol", 0.1, "largest allowed relative error, random-weight models")
	tolModel := flag.Float64("tol-model", 1e-3, "largest allowed relative error, trained models")
	flag.Parse()
	log.SetFlags(0)
	if *dir == "" {
		log.Fatal("oracle: -dir is required")
	}
	rep, err := harness.RunOracle(context.Background(), harness.OracleParams{Dir: *dir, TolRandom: *tolRandom, TolModel: *tolModel})
	if err != nil {
		log.Fatal(err)
	}
	res := rep.Results.(*harness.OracleResults)
	fmt.Print(harness.Markdown(rep, harness.OracleTables(res)))
	for _, r := range res.Rows {
		if !r.Pass {
			fmt.Fprintf(os.Stderr, "oracle: %s: relative error %.4g exceeds %g\n", r.Case, r.RelErr, r.Tol)
			os.Exit(1)
		}
	}
}
