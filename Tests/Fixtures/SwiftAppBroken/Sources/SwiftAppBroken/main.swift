let answer: Int = "not a number"
print(answer)
