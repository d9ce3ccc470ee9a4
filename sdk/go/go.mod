module ember.local/sdk

go 1.19
