"""Traffic policies: which version answers the requests that name none (a weighted split, sticky
by a header, a shadow that answers too), and the verdict that says whether a candidate is better."""
